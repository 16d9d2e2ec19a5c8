"""The code a shop pastes to send events to this server, for one source's write key.

Pure text: the base URL is what the browser used to reach this page (the shop must be
able to reach the same address; the page says so).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Snippets:
    browser: str
    browser_settings: str
    curl: str
    python: str
    api_host: str
    protocol: str


def _js(value: str) -> str:
    # JSON string literals are valid JavaScript; `<` escaped so a value cannot close
    # the <script> element it is pasted into.
    return json.dumps(value).replace("<", "\\u003c")


def snippets(write_key: str, base_url: str) -> Snippets:
    parts = urlsplit(base_url)
    protocol = parts.scheme or "https"
    api_host = f"{parts.netloc}/v1"
    base = f"{protocol}://{parts.netloc}"
    options = {"integrations": {"Segment.io": {"apiHost": api_host, "protocol": protocol}}}
    browser = f"""<script>
  // Segment's analytics.js, sending to Shopkeeper. It queues calls made before it loads.
  !function () {{
    var analytics = (window.analytics = window.analytics || []);
    if (analytics.initialize || analytics.invoked) return;
    analytics.invoked = true;
    analytics.methods = ["identify", "track", "page", "screen", "group", "alias", "reset",
      "ready", "on", "once", "off", "trackLink", "trackForm", "setAnonymousId",
      "addSourceMiddleware", "addDestinationMiddleware"];
    analytics.factory = function (method) {{
      return function () {{
        var args = Array.prototype.slice.call(arguments);
        args.unshift(method);
        analytics.push(args);
        return analytics;
      }};
    }};
    for (var i = 0; i < analytics.methods.length; i++) {{
      analytics[analytics.methods[i]] = analytics.factory(analytics.methods[i]);
    }}
    analytics.load = function (writeKey, options) {{
      var script = document.createElement("script");
      script.async = true;
      // Your own copy of analytics.js (Shopkeeper does not serve it yet).
      script.src = "/segment/analytics.min.js";
      document.head.appendChild(script);
      analytics._writeKey = writeKey;
      analytics._loadOptions = options;
    }};
    // Where analytics.js reads its settings file (shown below) from: your own site.
    analytics._cdn = window.location.origin + "/segment";
    analytics.load({_js(write_key)}, {json.dumps(options)});
    analytics.page();
  }}();
</script>"""
    settings = {
        "integrations": {
            "Segment.io": {"apiKey": write_key, "apiHost": api_host, "protocol": protocol}
        }
    }
    curl = (
        f"curl {base}/v1/track \\\n"
        f"  -u '{write_key}:' \\\n"
        "  -H 'Content-Type: application/json' \\\n"
        '  -d \'{"userId": "user-42", "event": "Order Completed", '
        '"properties": {"order_id": "o-1001", "revenue": 120, "currency": "USD"}}\''
    )
    python = f"""# pip install segment-analytics-python
import segment.analytics as analytics

analytics.write_key = {json.dumps(write_key)}
analytics.host = {json.dumps(base)}

analytics.identify("user-42", {{"email": "ana@example.com", "firstName": "Ana"}})
analytics.track("user-42", "Order Completed", {{"order_id": "o-1001", "revenue": 120}})
analytics.flush()"""
    return Snippets(
        browser=browser,
        browser_settings=json.dumps(settings, indent=2),
        curl=curl,
        python=python,
        api_host=api_host,
        protocol=protocol,
    )
