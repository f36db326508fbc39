#!/usr/bin/env python3
"""The course's network-reader client, as its report writes it (socket + struct + json),
run against sockit's classic reader protocol.

usage: classic_client.py HOST PORT WORKDIR EXPECTED_JSON

One deliberate difference: the course client reads the 4-byte header length with
recv(40), which only works when the server's next write has not arrived yet (a timing
accident that fails under load with any server); this client reads exactly 4 bytes.
"""
import hashlib
import json
import os
import socket
import sqlite3
import struct
import sys


def check(ok, what):
    """Fails the run with `what` unless `ok` (an explicit check: `assert` statements
    vanish under python -O / PYTHONOPTIMIZE)."""
    if not ok:
        sys.exit("classic client: check failed: %s" % (what,))

host, port, workdir, expected_path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
expected = json.load(open(expected_path, encoding="utf-8"))
buffsize = 1024 * 64

tcp_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
tcp_sock.settimeout(20)
tcp_sock.connect((host, port))


def recv_exact(n):
    data = b""
    while len(data) < n:
        chunk = tcp_sock.recv(n - len(data))
        check(chunk, "server closed the connection")
        data += chunk
    return data


def download(filename, savename):
    tcp_sock.send(("0 " + filename).encode("utf-8"))
    head_len_struct = recv_exact(4)
    head_len = struct.unpack("i", head_len_struct)[0]
    head_raw = recv_exact(head_len)
    head = json.loads(head_raw.decode("utf-8"))
    check(head["filename"] == filename, head)
    filesize = head["filesize"]
    recv_len = 0
    fp = open(savename, "wb")
    while recv_len < filesize:
        recv_cur = tcp_sock.recv(min(filesize - recv_len, buffsize))
        check(recv_cur, "server closed mid-file")
        fp.write(recv_cur)
        recv_len += len(recv_cur)
    fp.close()
    return head_raw


def request(text):
    tcp_sock.send(text.encode("utf-8"))
    return tcp_sock.recv(buffsize).decode("utf-8")


# 1. The catalog, opened with sqlite3 as the course client does.
db_path = os.path.join(workdir, "PDF_1.db")
head_raw = download("PDF.db", db_path)
check(head_raw.startswith(b'{"filename": "PDF.db", "filesize": '), head_raw)
conn = sqlite3.connect(db_path)
rows = {path: (page, flag, md5) for path, page, flag, md5 in conn.execute("select path, page, flag, md5 from book_info")}
conn.close()
check(expected["txt"] in rows, rows)
check(expected["pdf"] in rows, rows)
check(rows[expected["pdf"]][0] == 0 and rows[expected["txt"]][0] == 1, rows)
check(rows[expected["pdf"]][2] == expected["pdf_md5"], rows)

# 2. A GBK text book, paged on the server.
pages = int(request("1 " + expected["txt"]))
check(pages == expected["pages"], (pages, expected["pages"]))
check(request("2 1") == expected["page1"], "page 1 differs")
check(request("2 0") == expected["page2"], "2 0 is not page 2")
check(request("2 5") == expected["page5"], "page 5 differs")
check(request("2 0") == expected["page6"], "2 0 after 5 is not page 6")
reply = request("3")
check(reply == "已关闭文件", reply)

# 3. A PDF downloaded whole, checked against the catalog's md5.
pdf_path = os.path.join(workdir, "book.pdf")
download(expected["pdf"], pdf_path)
got = hashlib.md5(open(pdf_path, "rb").read()).hexdigest()
check(got == rows[expected["pdf"]][2], (got, rows[expected["pdf"]][2]))

tcp_sock.close()
print("classic client: ok")
