#!/usr/bin/env python3
"""A browser page's own IRC client: headless chromium opens `new WebSocket(URL,
['text.ircv3.net'])`, registers as `chromium`, joins #web, says hello and waits for an
answer from the channel.

usage: irc_ws_chromium.py WS_URL

Prints one JSON object: the negotiated subprotocol, whether every message arrived as a
text frame, the answer line, and the lines seen.
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "testkit", "scripts"))
from cdp import chromium_page  # noqa: E402

URL = sys.argv[1]

CLIENT = """
(async () => {
  const ws = new WebSocket(%s, ['text.ircv3.net']);
  const lines = [];
  let allText = true;
  let wake = () => {};
  ws.onmessage = (e) => {
    if (typeof e.data !== 'string') allText = false;
    lines.push(String(e.data));
    wake();
  };
  await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = () => fail(new Error('WebSocket error')); });
  let seen = 0;
  const until = (re) => new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error('timed out waiting for ' + re + ' in ' + JSON.stringify(lines))), 45000);
    const check = () => {
      for (; seen < lines.length; seen++) {
        if (re.test(lines[seen])) { clearTimeout(timer); const l = lines[seen++]; ok(l); return; }
      }
      wake = check;
    };
    check();
  });
  ws.send('NICK chromium');
  ws.send('USER chromium 0 * :Headless Chromium');
  await until(/^:\\S+ 001 chromium /);
  ws.send('JOIN #web');
  await until(/^:\\S+ 366 chromium #web /);
  ws.send('PRIVMSG #web :hello from chromium');
  const answer = await until(/ PRIVMSG #web :/);
  ws.send('QUIT :done');
  return JSON.stringify({protocol: ws.protocol, allText, answer, lines});
})()
""" % json.dumps(URL)

with chromium_page() as p:
    print(p.eval(CLIENT))
