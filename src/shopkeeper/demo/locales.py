"""The demo shop's countries: languages, time zones, currencies, cities, stores, names,
email domains and mobile number plans. Small hand-made lists, enough to look real.

Email domains all end in `.example` (reserved by RFC 2606): the demo's addresses look
like real ones but can never reach anybody.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

# (native, latin) pairs: the profile shows the native name, the email uses the latin one.
Name = tuple[str, str]


@dataclass(frozen=True, slots=True)
class City:
    name: str  # as a GeoIP service spells it (context.location.city)
    local: str  # as the customer writes it in an address
    timezone: str
    area_codes: tuple[str, ...] = ()  # US landline/mobile area codes of the city


@dataclass(frozen=True, slots=True)
class Country:
    code: str
    name: str
    locale: str
    language: str  # the language key of product names (catalog.NAMES)
    currency: str
    # Units of the local currency for one US dollar (the catalog's currency), and how
    # local prices are rounded: to a multiple of `price_step`, minus `charm` (9.99, 990).
    per_usd: float
    price_step: float
    charm: float
    weight: float  # share of the shop's visitors
    cities: tuple[tuple[City, float], ...]
    stores: tuple[str, ...]
    male: tuple[Name, ...]
    female: tuple[Name, ...]
    family: tuple[Name, ...]
    family_first: bool  # Chinese names are written family name first
    email_domains: tuple[tuple[str, float], ...]
    mobile_prefixes: tuple[str, ...]  # national mobile prefixes
    mobile_digits: int  # digits after the prefix
    calling_code: str
    # Marketing consent shares at sign-up: GDPR countries ask, and fewer say yes.
    email_opt_in: float
    sms_opt_in: float
    mobile_share: float  # of web sessions on a phone
    app_share: float  # of registered customers who also use the app
    eu: bool  # shows a cookie banner (context.consent on web events)
    vat: float  # VAT included in prices (tax line of an order); US sales tax is added
    sales_tax_added: bool


def _n(text: str) -> tuple[Name, ...]:
    """'native/latin native/latin ...' -> pairs; a name without '/' is its own latin."""
    pairs = []
    for item in text.split():
        native, _, latin = item.partition("/")
        pairs.append((native.replace("_", " "), (latin or native).replace("_", " ")))
    return tuple(pairs)


_THAI_MALE = _n(
    "สมชาย/Somchai สมศักดิ์/Somsak ประเสริฐ/Prasert วิชัย/Wichai ณัฐพล/Nattapon "
    "ธนากร/Thanakorn กิตติ/Kitti อนันต์/Anan พงศกร/Pongsakorn ศุภชัย/Supachai "
    "ธีรวัฒน์/Teerawat ปิยะ/Piya วรพล/Worapon ชัยวัฒน์/Chaiwat"
)
_THAI_FEMALE = _n(
    "สมศรี/Somsri มาลี/Malee ปราณี/Pranee วันเพ็ญ/Wanpen นภา/Napa กัญญา/Kanya "
    "พิมพ์ชนก/Pimchanok ศิริพร/Siriporn อรทัย/Orathai สุดารัตน์/Sudarat "
    "ณัฐธิดา/Nattida ชนิดา/Chanida ปวีณา/Paweena รัชนี/Ratchanee"
)
_THAI_FAMILY = _n(
    "ศรีสุข/Srisuk แสงทอง/Saengthong วงศ์ไทย/Wongthai สุขสวัสดิ์/Suksawat "
    "รัตนพันธ์/Rattanaphan บุญมา/Boonma จันทร์เพ็ญ/Chanpen ทองดี/Thongdee "
    "พรหมมา/Phromma ศรีวงศ์/Sriwong กิตติศักดิ์/Kittisak เจริญผล/Charoenphon "
    "มีสุข/Meesuk ใจดี/Jaidee แก้วมณี/Kaewmanee"
)
_CN_MALE = _n(
    "伟/Wei 强/Qiang 磊/Lei 军/Jun 洋/Yang 勇/Yong 杰/Jie 涛/Tao 明/Ming 超/Chao "
    "刚/Gang 浩然/Haoran 宇轩/Yuxuan 子豪/Zihao 俊杰/Junjie"
)
_CN_FEMALE = _n(
    "芳/Fang 娜/Na 敏/Min 静/Jing 丽/Li 艳/Yan 娟/Juan 霞/Xia 秀英/Xiuying "
    "桂英/Guiying 子涵/Zihan 欣怡/Xinyi 雨桐/Yutong 诗涵/Shihan"
)
_CN_FAMILY = _n(
    "王/Wang 李/Li 张/Zhang 刘/Liu 陈/Chen 杨/Yang 黄/Huang 赵/Zhao 吴/Wu 周/Zhou "
    "徐/Xu 孙/Sun 马/Ma 朱/Zhu 胡/Hu 郭/Guo 林/Lin 何/He 高/Gao 罗/Luo"
)
_RO_MALE = _n(
    "Andrei Alexandru Mihai Ionuț Ștefan Cristian Gabriel Florin Bogdan Radu Vlad "
    "Tudor Sorin Adrian"
)
_RO_FEMALE = _n(
    "Maria Elena Ioana Andreea Alexandra Ana Mihaela Cristina Raluca Ileana Ștefania "
    "Bianca Oana Irina"
)
_RO_FAMILY = _n(
    "Popescu Ionescu Popa Dumitru Stan Stoica Gheorghe Matei Ciobanu Rusu Munteanu "
    "Constantin Marin Lupu Diaconu Văduva Țăranu Moldovan Nistor Șerban"
)
_NO_MALE = _n("Jan Per Bjørn Ole Lars Kjell Knut Arne Magnus Håkon Jonas Sindre Eirik Oskar Aksel")
_NO_FEMALE = _n(
    "Anne Inger Kari Marit Ingrid Liv Eva Nora Ingeborg Solveig Åse Sigrid Thea Emma Sofie"
)
_NO_FAMILY = _n(
    "Hansen Johansen Olsen Larsen Andersen Pedersen Nilsen Kristiansen Jensen Karlsen "
    "Johnsen Pettersen Eriksen Berg Haugen Hagen Bakke Dahl Lie Sæther Strøm Løken"
)
_US_MALE = _n(
    "James Michael Robert John David William Daniel Christopher Matthew Anthony Jose "
    "Carlos Kevin Ethan Noah"
)
_US_FEMALE = _n(
    "Mary Patricia Jennifer Linda Elizabeth Jessica Sarah Emily Ashley Olivia Sophia "
    "Maria Priya Grace Chloe"
)
_US_FAMILY = _n(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez "
    "Lopez Wilson Anderson Thomas Taylor Moore Nguyen Kim Patel"
)

COUNTRIES: tuple[Country, ...] = (
    Country(
        code="TH",
        name="Thailand",
        locale="th-TH",
        language="th",
        currency="THB",
        per_usd=35.0,
        price_step=10,
        charm=1,
        weight=0.38,
        cities=(
            (City("Bangkok", "กรุงเทพมหานคร", "Asia/Bangkok"), 0.55),
            (City("Nonthaburi", "นนทบุรี", "Asia/Bangkok"), 0.12),
            (City("Chiang Mai", "เชียงใหม่", "Asia/Bangkok"), 0.14),
            (City("Phuket", "ภูเก็ต", "Asia/Bangkok"), 0.09),
            (City("Khon Kaen", "ขอนแก่น", "Asia/Bangkok"), 0.10),
        ),
        stores=("Bangkok Siam", "Bangkok Sukhumvit", "Chiang Mai Nimman"),
        male=_THAI_MALE,
        female=_THAI_FEMALE,
        family=_THAI_FAMILY,
        family_first=False,
        email_domains=(
            ("gmail.example", 0.55),
            ("hotmail.example", 0.25),
            ("yahoo.co.th.example", 0.20),
        ),
        mobile_prefixes=(
            "61",
            "62",
            "63",
            "64",
            "65",
            "80",
            "81",
            "82",
            "83",
            "84",
            "85",
            "86",
            "87",
            "88",
            "89",
            "90",
            "91",
            "92",
            "93",
            "94",
            "95",
        ),
        mobile_digits=7,
        calling_code="66",
        email_opt_in=0.62,
        sms_opt_in=0.38,
        mobile_share=0.72,
        app_share=0.45,
        eu=False,
        vat=0.07,
        sales_tax_added=False,
    ),
    Country(
        code="US",
        name="United States",
        locale="en-US",
        language="en",
        currency="USD",
        per_usd=1.0,
        price_step=1,
        charm=0.01,
        weight=0.20,
        cities=(
            (City("New York", "New York", "America/New_York", ("212", "646", "917")), 0.32),
            (City("Chicago", "Chicago", "America/Chicago", ("312", "773")), 0.18),
            (City("Denver", "Denver", "America/Denver", ("303", "720")), 0.10),
            (City("Los Angeles", "Los Angeles", "America/Los_Angeles", ("213", "310")), 0.25),
            (City("Seattle", "Seattle", "America/Los_Angeles", ("206",)), 0.15),
        ),
        stores=("New York SoHo", "Chicago Fulton Market"),
        male=_US_MALE,
        female=_US_FEMALE,
        family=_US_FAMILY,
        family_first=False,
        email_domains=(
            ("gmail.example", 0.45),
            ("yahoo.example", 0.15),
            ("outlook.example", 0.20),
            ("icloud.example", 0.20),
        ),
        mobile_prefixes=(),
        mobile_digits=7,
        calling_code="1",
        email_opt_in=0.52,
        sms_opt_in=0.22,
        mobile_share=0.55,
        app_share=0.30,
        eu=False,
        vat=0.0,
        sales_tax_added=True,
    ),
    Country(
        code="RO",
        name="Romania",
        locale="ro-RO",
        language="ro",
        currency="RON",
        per_usd=4.6,
        price_step=1,
        charm=0.01,
        weight=0.15,
        cities=(
            (City("Bucharest", "București", "Europe/Bucharest"), 0.45),
            (City("Cluj-Napoca", "Cluj-Napoca", "Europe/Bucharest"), 0.17),
            (City("Timisoara", "Timișoara", "Europe/Bucharest"), 0.13),
            (City("Iasi", "Iași", "Europe/Bucharest"), 0.13),
            (City("Brasov", "Brașov", "Europe/Bucharest"), 0.12),
        ),
        stores=("București Băneasa", "Cluj Iulius"),
        male=_RO_MALE,
        female=_RO_FEMALE,
        family=_RO_FAMILY,
        family_first=False,
        email_domains=(("gmail.example", 0.5), ("yahoo.example", 0.35), ("yahoo.ro.example", 0.15)),
        mobile_prefixes=("72", "73", "74", "75", "76", "77", "78"),
        mobile_digits=7,
        calling_code="40",
        email_opt_in=0.36,
        sms_opt_in=0.16,
        mobile_share=0.60,
        app_share=0.25,
        eu=True,
        vat=0.19,
        sales_tax_added=False,
    ),
    Country(
        code="NO",
        name="Norway",
        locale="nb-NO",
        language="nb",
        currency="NOK",
        per_usd=10.5,
        price_step=10,
        charm=1,
        weight=0.12,
        cities=(
            (City("Oslo", "Oslo", "Europe/Oslo"), 0.45),
            (City("Bergen", "Bergen", "Europe/Oslo"), 0.2),
            (City("Trondheim", "Trondheim", "Europe/Oslo"), 0.15),
            (City("Stavanger", "Stavanger", "Europe/Oslo"), 0.12),
            (City("Tromso", "Tromsø", "Europe/Oslo"), 0.08),
        ),
        stores=("Oslo Storo", "Bergen Lagunen"),
        male=_NO_MALE,
        female=_NO_FEMALE,
        family=_NO_FAMILY,
        family_first=False,
        email_domains=(
            ("gmail.example", 0.45),
            ("hotmail.example", 0.2),
            ("online.no.example", 0.15),
            ("outlook.example", 0.2),
        ),
        mobile_prefixes=("4", "9"),
        mobile_digits=7,
        calling_code="47",
        email_opt_in=0.34,
        sms_opt_in=0.14,
        mobile_share=0.58,
        app_share=0.28,
        eu=True,
        vat=0.25,
        sales_tax_added=False,
    ),
    Country(
        code="CN",
        name="China",
        locale="zh-CN",
        language="zh",
        currency="CNY",
        per_usd=7.2,
        price_step=1,
        charm=0,
        weight=0.15,
        cities=(
            (City("Shanghai", "上海", "Asia/Shanghai"), 0.35),
            (City("Beijing", "北京", "Asia/Shanghai"), 0.30),
            (City("Shenzhen", "深圳", "Asia/Shanghai"), 0.15),
            (City("Hangzhou", "杭州", "Asia/Shanghai"), 0.12),
            (City("Chengdu", "成都", "Asia/Shanghai"), 0.08),
        ),
        stores=("上海新天地", "北京三里屯"),
        male=_CN_MALE,
        female=_CN_FEMALE,
        family=_CN_FAMILY,
        family_first=True,
        email_domains=(("qq.example", 0.5), ("163.example", 0.3), ("126.example", 0.2)),
        mobile_prefixes=(
            "130",
            "135",
            "136",
            "137",
            "138",
            "139",
            "150",
            "151",
            "152",
            "158",
            "159",
            "177",
            "186",
            "187",
            "188",
            "189",
            "199",
        ),
        mobile_digits=8,
        calling_code="86",
        email_opt_in=0.45,
        sms_opt_in=0.33,
        mobile_share=0.80,
        app_share=0.55,
        eu=False,
        vat=0.13,
        sales_tax_added=False,
    ),
)

BY_CODE = {country.code: country for country in COUNTRIES}
LOCALES = tuple(country.locale for country in COUNTRIES)

_ASCII_FOLD = str.maketrans({"ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "å": "a", "ß": "ss"})


def ascii_slug(text: str) -> str:
    """Letters and digits of a latin name, lower-cased, without accents (Ștefan -> stefan,
    Bjørn -> bjorn), for email local parts and url slugs."""
    folded = unicodedata.normalize("NFKD", text.translate(_ASCII_FOLD))
    return "".join(ch for ch in folded.lower() if ch.isascii() and (ch.isalnum() or ch == " "))


def local_price(usd: float, country: Country) -> float:
    """A catalog price in the country's currency, rounded the way shops there price:
    ฿1,990, 1 499 kr, 449.99 lei, $89.99, ¥649."""
    raw = usd * country.per_usd
    steps = max(1, round(raw / country.price_step))
    return round(steps * country.price_step - country.charm, 2)
