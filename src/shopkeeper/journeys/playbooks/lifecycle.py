"""Lifecycle playbooks: welcome and lead nurturing."""

from __future__ import annotations

WELCOME_NAME = "Welcome series"
WELCOME_DESCRIPTION = (
    "Greets a new newsletter subscriber within minutes, then shows the shop's most "
    "popular products two days later and a reason to buy a week in, unless they have "
    "bought already."
)

WELCOME = """\
name: Welcome series
description: >-
  A welcome within minutes of signing up for the newsletter, popular products after two
  days, and a nudge after a week for those who have not bought.
entry:
  event: Signed Up
reentry: once
exit_on:
  - event: Order Completed
goal:
  event: Order Completed
  within: 14d
steps:
  - id: welcome
    type: send
    channel: email
    template: welcome
  - id: wait_2d
    type: wait
    duration: 2d
  - id: popular
    type: send
    channel: email
    template: welcome_popular
  - id: wait_5d
    type: wait
    duration: 5d
  - id: not_bought
    type: condition
    condition: not orders_count >= 1
    then: next
    else: end
  - id: nudge
    type: send
    channel: best
    fallback: [email, mobile_push, web_push]
    template: welcome_nudge
"""

_FOOT = (
    '<p style="font-size:12px;color:#777">{{ shop.name }} · '
    '<a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
)
_FOOT_NB = (
    '<p style="font-size:12px;color:#777">{{ shop.name }} · '
    '<a href="{{ unsubscribe_url }}">Meld deg av</a></p>'
)
_PICKS = (
    '{% for p in recommendations %}<p><a href="{{ link(p.url or shop.url) }}">{{ p.name }}</a>'
    " {{ p.price | money(p.currency) }}</p>{% endfor %}"
)
_PICKS_TEXT = (
    "{% for p in recommendations %}- {{ p.name }} {{ p.price | money(p.currency) }}\n{% endfor %}"
)

_NUDGE_PUSH = {
    "": {
        "title": "Picked for you",
        "body": "New favourites at {{ shop.name }}",
        "url": "{{ link(shop.url) }}",
    },
    "nb": {
        "title": "Utvalgt for deg",
        "body": "Nye favoritter hos {{ shop.name }}",
        "url": "{{ link(shop.url) }}",
    },
}

WELCOME_TEMPLATES = {
    "welcome": {
        "email": {
            "": {
                "subject": "Welcome to {{ shop.name }}",
                "html": "<html><body><p>Hi {{ profile.first_name or 'there' }}, welcome to "
                "{{ shop.name }}! We are glad you are here.</p>"
                '<p><a href="{{ link(shop.url) }}">Visit the shop</a></p>'
                + _FOOT
                + "</body></html>",
                "text": "Hi {{ profile.first_name or 'there' }}, welcome to {{ shop.name }}!\n\n"
                "{{ link(shop.url) }}\n\nUnsubscribe: {{ unsubscribe_url }}\n",
            },
            "nb": {
                "subject": "Velkommen til {{ shop.name }}",
                "html": "<html><body><p>Hei {{ profile.first_name or '' }}, velkommen til "
                '{{ shop.name }}!</p><p><a href="{{ link(shop.url) }}">Gå til butikken</a></p>'
                + _FOOT_NB
                + "</body></html>",
                "text": "Hei {{ profile.first_name or '' }}, velkommen til {{ shop.name }}!\n\n"
                "{{ link(shop.url) }}\n\nMeld deg av: {{ unsubscribe_url }}\n",
            },
        }
    },
    "welcome_popular": {
        "email": {
            "": {
                "subject": "What other customers love at {{ shop.name }}",
                "html": "<html><body><p>A few favourites:</p>" + _PICKS + _FOOT + "</body></html>",
                "text": "A few favourites:\n"
                + _PICKS_TEXT
                + "\nUnsubscribe: {{ unsubscribe_url }}\n",
            },
            "nb": {
                "subject": "Kundefavoritter hos {{ shop.name }}",
                "html": "<html><body><p>Noen favoritter:</p>"
                + _PICKS
                + _FOOT_NB
                + "</body></html>",
                "text": "Noen favoritter:\n"
                + _PICKS_TEXT
                + "\nMeld deg av: {{ unsubscribe_url }}\n",
            },
        }
    },
    "welcome_nudge": {
        "email": {
            "": {
                "subject": "Found anything you like?",
                "html": "<html><body><p>Hi {{ profile.first_name or 'there' }}, these might be "
                "for you:</p>" + _PICKS + _FOOT + "</body></html>",
                "text": "These might be for you:\n"
                + _PICKS_TEXT
                + "\nUnsubscribe: {{ unsubscribe_url }}\n",
            },
            "nb": {
                "subject": "Har du funnet noe du liker?",
                "html": "<html><body><p>Hei {{ profile.first_name or '' }}, kanskje noe for "
                "deg:</p>" + _PICKS + _FOOT_NB + "</body></html>",
                "text": "Kanskje noe for deg:\n"
                + _PICKS_TEXT
                + "\nMeld deg av: {{ unsubscribe_url }}\n",
            },
        },
        "mobile_push": _NUDGE_PUSH,
        "web_push": _NUDGE_PUSH,
    },
}
