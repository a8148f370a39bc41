# A real librbd 16.2 client (python3-rbd) driven line by line from the interop suite.
# Commands on stdin, one answer line each on stdout:
#   w OFF TAG  -> writes 4 KiB of pattern TAG at OFF (automatic lock policy), answers "ok <owner>"
#   r OFF      -> reads 4 KiB at OFF, answers "data <hex>"
#   o          -> answers "owner <True|False>"
#   s NAME     -> creates snapshot NAME (forwarded to the lock owner if another client holds it),
#                 answers "ok"
#   pid        -> answers "pid <process id>" (the suite signals the peer by pid)
#   q          -> closes the image and exits
# The pattern matches ceph_support::pattern(TAG, 0, 4096): byte j is TAG ^ j (mod 256).
import os
import sys

import rados
import rbd


def pattern(tag):
    return bytes(((tag ^ j) & 0xFF) for j in range(4096))


def main():
    conf, pool, image = sys.argv[1:4]
    cluster = rados.Rados(conffile=conf)
    cluster.connect()
    ioctx = cluster.open_ioctx(pool)
    img = rbd.Image(ioctx, image)
    print("ready", flush=True)
    for line in sys.stdin:
        parts = line.split()
        if not parts:
            continue
        try:
            if parts[0] == "w":
                img.write(pattern(int(parts[2])), int(parts[1]))
                print("ok", img.is_exclusive_lock_owner(), flush=True)
            elif parts[0] == "r":
                print("data", img.read(int(parts[1]), 4096).hex(), flush=True)
            elif parts[0] == "o":
                print("owner", img.is_exclusive_lock_owner(), flush=True)
            elif parts[0] == "s":
                img.create_snap(parts[1])
                print("ok", flush=True)
            elif parts[0] == "pid":
                print("pid", os.getpid(), flush=True)
            elif parts[0] == "q":
                break
        except Exception as e:  # report, keep serving: the test decides
            print("error", type(e).__name__, str(e).replace("\n", " "), flush=True)
    img.close()
    ioctx.close()
    cluster.shutdown()


main()
