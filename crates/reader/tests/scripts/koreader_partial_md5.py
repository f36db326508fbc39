#!/usr/bin/env python3
"""KOReader's util.partialMD5 (frontend/util.lua), ported line by line, including LuaJIT's
bit.lshift semantics: the shift count is taken modulo 32 and the result wraps to 32 bits,
so lshift(1024, -2) is lshift(1024, 30) = 0."""
import hashlib
import sys


def lshift(x, n):
    return (x << (n & 31)) & 0xFFFFFFFF


def partial_md5(path):
    step, size = 1024, 1024
    update = hashlib.md5()
    with open(path, "rb") as f:
        for i in range(-1, 11):
            f.seek(lshift(step, 2 * i))
            sample = f.read(size)
            if sample:
                update.update(sample)
            else:
                break
    return update.hexdigest()


print(partial_md5(sys.argv[1]))
