"""The demo shop's people: who they are (names, email, phone, birthday, city), the
devices they shop on and what they consent to. Pure: a seeded `random.Random` in.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from typing import Any

import phonenumbers

from shopkeeper.demo.locales import COUNTRIES, City, Country, ascii_slug

ANONYMOUS = "anonymous"  # browses, never signs up
REGISTERED = "registered"  # signs up online (and may buy, online or in a store)
STORE = "store"  # first met in a store: a CRM record and POS orders

WEB_LIBRARY = {"name": "analytics.js", "version": "next-1.70.0"}
IOS_LIBRARY = {"name": "analytics-swift", "version": "1.5.11"}
ANDROID_LIBRARY = {"name": "analytics-kotlin", "version": "1.16.0"}

_DESKTOP_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/125.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:126.0) Gecko/20100101 Firefox/126.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/125.0.0.0 Safari/537.36 Edg/125.0.0.0",
)
_MOBILE_AGENTS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/125.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; 2201116SG) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36",
)
_TABLET_AGENTS = (
    "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/125.0.0.0 Safari/537.36",
)
# (manufacturer, model, os version) of phones running the shop's app.
_IPHONES = (
    ("Apple", "iPhone15,2", "17.4.1"),
    ("Apple", "iPhone14,5", "17.2"),
    ("Apple", "iPhone16,1", "17.5"),
)
_ANDROIDS = {
    "CN": (
        ("HUAWEI", "NOH-AN00", "12"),
        ("Xiaomi", "2211133C", "14"),
        ("OPPO", "PHB110", "13"),
        ("vivo", "V2227A", "13"),
    ),
    "TH": (
        ("samsung", "SM-A546E", "14"),
        ("OPPO", "CPH2451", "13"),
        ("vivo", "V2227", "13"),
        ("Xiaomi", "2201116SG", "13"),
    ),
    "*": (
        ("samsung", "SM-S918B", "14"),
        ("samsung", "SM-A546B", "14"),
        ("Google", "Pixel 8", "14"),
        ("Xiaomi", "2201116SG", "13"),
    ),
}
_IOS_APP_SHARE = {"CN": 0.25, "TH": 0.35, "RO": 0.3, "US": 0.58, "NO": 0.6}


def new_id(rng: random.Random) -> str:
    """A UUID4 from the seeded generator (uuid.uuid4 would break reproducibility)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclass(slots=True)
class Device:
    kind: str  # web or app
    form: str  # desktop, mobile or tablet
    anonymous_id: str
    user_agent: str | None = None
    device_id: str | None = None  # app: identifierForVendor / Android id
    manufacturer: str | None = None
    model: str | None = None
    os_name: str | None = None
    os_version: str | None = None
    push_token: str | None = None  # set once push is enabled
    installed: bool = False
    logged_in: bool = False
    # The ground truth's key for the anonymous profile this device starts: its anonymous
    # id on the web (a cleared cookie starts another), its device id in the app.
    truth_key: str = ""

    def context(self, country: Country, city: City) -> dict[str, Any]:
        base: dict[str, Any] = {
            "locale": country.locale,
            "timezone": city.timezone,
            "location": {"country": country.code, "city": city.name},
        }
        if self.kind == "web":
            base["library"] = WEB_LIBRARY
            base["userAgent"] = self.user_agent
            return base
        ios = self.os_name == "iOS"
        device: dict[str, Any] = {
            "id": self.device_id,
            "manufacturer": self.manufacturer,
            "model": self.model,
            "type": "ios" if ios else "android",
        }
        if self.push_token:
            device["token"] = self.push_token
        base["library"] = IOS_LIBRARY if ios else ANDROID_LIBRARY
        base["device"] = device
        base["os"] = {"name": self.os_name, "version": self.os_version}
        base["app"] = {
            "name": "Baan Living",
            "version": "4.12.0",
            "build": "4120",
            "namespace": "example.baanliving.app",
        }
        return base


@dataclass(slots=True)
class Person:
    index: int
    kind: str
    country: Country
    city: City
    user_id: str
    first: tuple[str, str]  # (native, latin)
    last: tuple[str, str]
    gender: str
    email: str
    phone: str
    birthday: str | None
    email_opt_in: bool
    sms_opt_in: bool
    devices: list[Device]
    categories: list[int]  # favourite category indices, most liked first
    cart_rate: float  # chance that a browsing session ends with something in the cart
    # -- state while the history unfolds --
    signed_up: bool = False
    known_ids: set[str] = field(default_factory=set)  # user_id, email, phone sent so far
    crm_record: bool = False
    orders: list[dict[str, Any]] = field(default_factory=list)
    pending: int = 0  # activities still scheduled
    # truth: anonymous-profile key -> linked to the known profile yet
    keys: dict[str, bool] = field(default_factory=dict)

    @property
    def name(self) -> str:
        if self.country.family_first:
            return f"{self.last[0]}{self.first[0]}"
        return f"{self.first[0]} {self.last[0]}"

    @property
    def known(self) -> bool:
        return bool(self.known_ids)


def _weighted(rng: random.Random, pairs: tuple[tuple[Any, float], ...]) -> Any:
    return rng.choices([item for item, _ in pairs], [w for _, w in pairs])[0]


def pick_country(rng: random.Random) -> Country:
    return _weighted(rng, tuple((c, c.weight) for c in COUNTRIES))  # type: ignore[no-any-return]


def mobile_number(rng: random.Random, country: Country, city: City) -> str:
    """A valid mobile number of the country, E.164."""
    for _ in range(50):
        if country.code == "US":
            area = rng.choice(city.area_codes)
            national = (
                f"{area}{rng.randint(2, 9)}{rng.randint(0, 99):02d}{rng.randint(0, 9999):04d}"
            )
        else:
            prefix = rng.choice(country.mobile_prefixes)
            digits = "".join(str(rng.randint(0, 9)) for _ in range(country.mobile_digits))
            national = prefix + digits
        number = f"+{country.calling_code}{national}"
        if phonenumbers.is_valid_number(phonenumbers.parse(number)):
            return number
    raise RuntimeError(f"no valid mobile number found for {country.code}")  # pragma: no cover


def _email(rng: random.Random, country: Country, first: str, last: str, birth: int) -> str:
    domain = _weighted(rng, country.email_domains)
    if domain == "qq.example":  # QQ addresses are the account number
        return f"{rng.randint(10_000_000, 3_999_999_999)}@{domain}"
    f, la = ascii_slug(first).replace(" ", ""), ascii_slug(last).replace(" ", "")
    style = rng.random()
    if style < 0.35:
        local = f"{f}.{la}"
    elif style < 0.55:
        local = f"{f}{la}{rng.randint(1, 99)}"
    elif style < 0.75:
        local = f"{f[0]}{la}{birth % 100:02d}"
    elif style < 0.9:
        local = f"{f}_{la}"
    else:
        local = f"{la}.{f}{rng.randint(1, 9)}"
    return f"{local}@{domain}"


def _web_device(rng: random.Random, form: str) -> Device:
    agents = {"desktop": _DESKTOP_AGENTS, "mobile": _MOBILE_AGENTS, "tablet": _TABLET_AGENTS}
    anonymous_id = new_id(rng)
    return Device(
        "web", form, anonymous_id, user_agent=rng.choice(agents[form]), truth_key=anonymous_id
    )


def _app_device(rng: random.Random, country: Country) -> Device:
    if rng.random() < _IOS_APP_SHARE.get(country.code, 0.5):
        manufacturer, model, version = rng.choice(_IPHONES)
        os_name = "iOS"
    else:
        manufacturer, model, version = rng.choice(_ANDROIDS.get(country.code, _ANDROIDS["*"]))
        os_name = "Android"
    device_id = new_id(rng).upper() if os_name == "iOS" else f"{rng.getrandbits(64):016x}"
    return Device(
        "app",
        "mobile",
        new_id(rng),
        device_id=device_id,
        manufacturer=manufacturer,
        model=model,
        os_name=os_name,
        os_version=version,
        truth_key=device_id,
    )


def web_form(rng: random.Random, country: Country) -> str:
    roll = rng.random()
    if roll < country.mobile_share:
        return "mobile"
    return "tablet" if roll < country.mobile_share + 0.07 else "desktop"


def make_devices(rng: random.Random, kind: str, country: Country) -> list[Device]:
    """Primary device first. Registered customers often have a second screen and some use
    the app; anonymous visitors mostly one browser."""
    if kind == STORE:
        return [_web_device(rng, web_form(rng, country))]
    if kind == ANONYMOUS:
        if rng.random() < 0.08:
            return [_app_device(rng, country)]
        devices = [_web_device(rng, web_form(rng, country))]
        if rng.random() < 0.1:
            devices.append(
                _web_device(rng, "desktop" if devices[0].form != "desktop" else "mobile")
            )
        return devices
    devices = [_web_device(rng, web_form(rng, country))]
    if rng.random() < 0.5:
        devices.append(_web_device(rng, "desktop" if devices[0].form != "desktop" else "mobile"))
    if rng.random() < country.app_share:
        devices.append(_app_device(rng, country))
    return devices


def make_person(
    rng: random.Random,
    index: int,
    kind: str,
    category_weights: list[float],
    used: set[str],
    now_year: int,
) -> Person:
    country = pick_country(rng)
    city = _weighted(rng, country.cities)
    gender = "female" if rng.random() < 0.56 else "male"
    first = rng.choice(country.female if gender == "female" else country.male)
    last = rng.choice(country.family)
    birth_year = now_year - int(rng.triangular(18, 75, 34))
    for attempt in range(1000):
        email = _email(rng, country, first[1], last[1], birth_year)
        if attempt > 3:  # common names: after a few tries, a number makes it unique
            local, _, domain = email.partition("@")
            email = f"{local}{rng.randint(100, 99_999)}@{domain}"
        if email not in used:
            break
    used.add(email)
    while True:
        phone = mobile_number(rng, country, city)
        if phone not in used:
            break
    used.add(phone)
    birthday = None
    if rng.random() < 0.6:
        birthday = f"{birth_year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    n_categories = len(category_weights)
    favourites: list[int] = []
    while len(favourites) < 3:
        pick = rng.choices(range(n_categories), category_weights)[0]
        if pick not in favourites:
            favourites.append(pick)
    return Person(
        index=index,
        kind=kind,
        country=country,
        city=city,
        user_id=str(1_000_000 + index),
        first=first,
        last=last,
        gender=gender,
        email=email,
        phone=phone,
        birthday=birthday,
        email_opt_in=rng.random() < country.email_opt_in,
        sms_opt_in=rng.random() < country.sms_opt_in,
        devices=make_devices(rng, kind, country),
        categories=favourites,
        cart_rate=rng.betavariate(2.0, 3.0),
    )
