"""The scenario engine: deterministic from a seed, over the admin API, with the shopper's browser."""

import http.server
import threading


def test_scenario_is_deterministic_and_adds(sim, wx, world, receiver):
    first = sim.run_scenario(seed=42, customers=5, state="store-1")
    assert len(first["external_userids"]) == 5 and all(e.startswith("wm") for e in first["external_userids"])
    assert all(a["welcome_code"] for a in first["added"])
    again = sim.run_scenario(seed=42, customers=5, state="store-1")
    assert again["external_userids"] == first["external_userids"]
    assert [a["welcome_code"] for a in again["added"]] == [None] * 5  # already friends: nothing happens
    other = sim.run_scenario(seed=43, customers=5, state="store-1")
    assert set(other["external_userids"]).isdisjoint(first["external_userids"])
    assert set(first["external_userids"]) <= set(wx.get("externalcontact/list", userid="alice")["external_userid"])
    sim.drain(10)
    # One add each for the 10 new shoppers. WeCom redelivers a callback the receiver was slow to answer (so does the
    # simulator, on a loaded machine): count adds, not deliveries.
    adds = {(e.get("UserID"), e.get("ExternalUserID")) for e in receiver.of("add_external_contact")}
    assert len(adds) == 10


def test_scenario_opens_links_and_submits_claim_form(sim, wx, world):
    seen = []

    class Page(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            seen.append(("GET", self.path, self.headers["User-Agent"]))
            body = b'<html><form method="post" action="/claim"><input name="token" value="t1"><button>Open</button>' \
                   b"</form></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            seen.append(("POST", self.path, self.rfile.read(int(self.headers["Content-Length"])).decode()))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"ok": true}')

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/rp/abc"
    try:
        result = sim.run_scenario(seed=5, customers=1, state="store-1")
        eid = result["external_userids"][0]
        code = result["added"][0]["welcome_code"]
        wx.post("externalcontact/send_welcome_msg", {"welcome_code": code, "text": {"content": "hi"},
                                                     "attachments": [{"msgtype": "link", "link": {"title": "RP",
                                                                                                  "url": url}}]})
        claimed = sim.run_scenario(seed=5, customers=1, claim=True)
        assert claimed["opened"] == [{"url": url, "status": 200}]
        assert claimed["claims"][0]["status"] == 200
        assert seen[0][0] == "GET" and "MicroMessenger" in seen[0][2]
        assert seen[1] == ("POST", "/claim", "token=t1")
        direct = sim.open_link(eid, url)
        assert direct["status"] == 200 and "text/html" in direct["content_type"] and "<form" in direct["body"]
    finally:
        server.shutdown()
        server.server_close()
