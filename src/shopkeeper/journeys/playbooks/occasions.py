"""Playbooks for the days that matter to people: their birthday, and holidays of their
own country (Mother's Day falls on different days in Norway, the UK and the US)."""

from __future__ import annotations

from shopkeeper.journeys.playbooks import parts as p
from shopkeeper.journeys.playbooks.parts import HELLO, Channels

# -- birthday -----------------------------------------------------------------------------

BIRTHDAY_NAME = "Birthday"
BIRTHDAY_DESCRIPTION = (
    "On each customer's birthday (the birthday trait), at 9 in the morning where they "
    "live, a greeting with a unique birthday code valid for two weeks."
)
BIRTHDAY = """\
name: Birthday
description: >-
  A greeting with a unique birthday code at 9 in the morning of each person's
  birthday, in their own time zone.
entry:
  date: birthday
  annual: true
  hour: 9
reentry: every_time
goal:
  event: Order Completed
  within: 14d
steps:
  - id: gift
    type: coupon
    pool: birthday
  - id: greeting
    type: send
    channel: best
    fallback: [email, sms, mobile_push, web_push]
    template: birthday
"""

BIRTHDAY_TEMPLATES: dict[str, Channels] = {
    "birthday": {
        "email": {
            "": p.email(
                "",
                "Happy birthday, {{ profile.first_name or 'from all of us' }}!",
                f"<p>{HELLO['']} happy birthday from all of us at {{{{ shop.name }}}}! "
                "Here is a gift to celebrate:</p>" + p.COUPON_HTML[""] + p.button("Treat myself"),
                f"{HELLO['']} happy birthday from all of us at {{{{ shop.name }}}}!\n"
                + p.COUPON_TEXT[""]
                + "{{ link(shop.url) }}",
            ),
            "nb": p.email(
                "nb",
                "Gratulerer med dagen{{ ', ' ~ profile.first_name if profile.first_name }}!",
                f"<p>{HELLO['nb']} gratulerer med dagen fra alle oss i {{{{ shop.name }}}}! "
                "Her er en gave:</p>" + p.COUPON_HTML["nb"] + p.button("Unn deg noe"),
                f"{HELLO['nb']} gratulerer med dagen fra alle oss i {{{{ shop.name }}}}!\n"
                + p.COUPON_TEXT["nb"]
                + "{{ link(shop.url) }}",
            ),
        },
        **p.short(
            {"": "Happy birthday!", "nb": "Gratulerer med dagen!"},
            {
                "": "A birthday gift: {{ coupon.code if coupon else 'see the shop' }}",
                "nb": "En bursdagsgave: {{ coupon.code if coupon else 'se butikken' }}",
            },
        ),
    }
}

# -- holidays -----------------------------------------------------------------------------

HOLIDAYS_NAME = "Holiday gift guide"
HOLIDAYS_DESCRIPTION = (
    "A gift guide a week before Mother's Day in each customer's own country (the second "
    "Sunday of February in Norway, Mothering Sunday in the UK, the second Sunday of May "
    "in the US...). Change the holiday to christmas, fathers_day, black_friday, "
    'valentines, national_day or any holiday by its name ("Midsummer Day"), and the '
    "days before it."
)
HOLIDAYS = """\
name: Holiday gift guide
description: >-
  A gift guide 7 days before Mother's Day in each person's own country, at 9 in the
  morning where they live.
entry:
  holiday: mothers_day
  days_before: 7
  hour: 9
reentry: every_time
goal:
  event: Order Completed
  within: 10d
steps:
  - id: gift_guide
    type: send
    channel: best
    fallback: [email, mobile_push, web_push]
    template: holiday_gift_guide
"""

# The holiday's name as a Norwegian reader knows it (the English one comes with the entry).
_NAME = {
    "": "{{ variables.entry.holiday_name or 'The holiday' }}",
    "nb": (
        "{{ {'mothers_day': 'Morsdag', 'fathers_day': 'Farsdag', 'christmas': 'Jul', "
        "'christmas_eve': 'Julaften', 'new_year': 'Nyttår', 'valentines': 'Valentinsdagen', "
        "'national_day': 'Nasjonaldagen'}.get(variables.entry.holiday) "
        "or variables.entry.holiday_name or 'Høytiden' }}"
    ),
}
_WHEN = "{{ variables.entry.holiday_date | date('long') }}"

HOLIDAY_TEMPLATES: dict[str, Channels] = {
    "holiday_gift_guide": {
        "email": {
            "": p.email(
                "",
                f"{_NAME['']} is coming: gift ideas",
                f"<p>{HELLO['']} {_NAME['']} is on {_WHEN}. A few gift ideas:</p>"
                + p.picks_html("")
                + p.button("Find a gift"),
                f"{HELLO['']} {_NAME['']} is on {_WHEN}. A few gift ideas:\n" + p.picks_text(""),
            ),
            "nb": p.email(
                "nb",
                f"{_NAME['nb']} nærmer seg: gaveideer",
                f"<p>{HELLO['nb']} {_NAME['nb']} er {_WHEN}. Noen gaveideer:</p>"
                + p.picks_html("nb")
                + p.button("Finn en gave"),
                f"{HELLO['nb']} {_NAME['nb']} er {_WHEN}. Noen gaveideer:\n" + p.picks_text("nb"),
            ),
        },
        **p.short(
            {"": f"{_NAME['']} is coming", "nb": f"{_NAME['nb']} nærmer seg"},
            {"": "Gift ideas for " + _WHEN + ".", "nb": "Gaveideer til " + _WHEN + "."},
            channels=("mobile_push", "web_push"),
        ),
    }
}
