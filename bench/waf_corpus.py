#!/usr/bin/env python3
"""Sends the WAF corpus (tests/waf-corpus) to an HTTPS endpoint the way the test gate
does (each `arg` payload in a form `description` and in a JSON `metadata[note]`, each
`header:` payload in that header) and prints how many attack and benign requests were
blocked (HTTP 403).

    bench/waf_corpus.py URL [API_KEY]
"""
import http.client
import json
import ssl
import sys
import urllib.parse
from pathlib import Path

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "waf-corpus"


def requests(entry):
    loc, payload = entry["location"], entry["payload"]
    if loc == "arg":
        form = "amount=100&currency=usd&description=" + urllib.parse.quote(payload, safe="")
        yield "application/x-www-form-urlencoded", form.encode(), {}
        body = {"amount": 100, "currency": "usd", "metadata": {"note": payload}}
        yield "application/json", json.dumps(body).encode(), {}
    else:
        yield "application/x-www-form-urlencoded", b"amount=100&currency=usd", {loc[len("header:"):]: payload}


def main():
    url = urllib.parse.urlsplit(sys.argv[1])
    key = sys.argv[2] if len(sys.argv) > 2 else None
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = None
    for name, attack in (("crs-3.3.4-attacks.jsonl", True), ("legit-dev.jsonl", False)):
        blocked = total = 0
        for line in (CORPUS / name).read_text(encoding="utf-8").splitlines():
            for ctype, body, extra in requests(json.loads(line)):
                headers = {"Content-Type": ctype, **extra}
                if key:
                    headers["Authorization"] = "Bearer " + key
                for attempt in range(2):
                    try:
                        if conn is None:
                            conn = http.client.HTTPSConnection(url.hostname, url.port, context=ctx, timeout=10)
                        conn.request("POST", url.path, body=body, headers=headers)
                        resp = conn.getresponse()
                        resp.read()
                        status = resp.status
                        if resp.getheader("connection", "").lower() == "close":
                            conn.close()
                            conn = None
                        break
                    except (http.client.HTTPException, OSError, ValueError, UnicodeError):
                        # a header value http.client itself refuses to send counts as blocked
                        if conn is not None:
                            conn.close()
                        conn = None
                        status = 403 if attempt == 1 else None
                total += 1
                blocked += status == 403
        kind = "attack" if attack else "benign"
        print(f"{kind} {blocked} {total} {100.0 * blocked / total:.1f}")


if __name__ == "__main__":
    main()
