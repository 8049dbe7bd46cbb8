#!/usr/bin/env python3
"""Generate a layer stack for the diff benchmark: an image (lower) of 50,000 files and an upper
dir of 100,000 entries (30,000 copy-ups of image files: a third touched, a third rewritten with
the same size, a third with another size; 69,000 new files; 1,000 whiteouts)."""
import os, random, sys

root = sys.argv[1]
random.seed(42)
lower, upper = os.path.join(root, "lower"), os.path.join(root, "upper")
if os.path.exists(os.path.join(root, ".done")):
    sys.exit(0)
os.makedirs(lower, exist_ok=True)
os.makedirs(upper, exist_ok=True)

def data(n, seed):
    return (bytes([seed % 251]) * n)

files = []
for d in range(500):
    dd = os.path.join(lower, "usr/share/d%03d" % d)
    os.makedirs(dd, exist_ok=True)
    for f in range(100):
        p = "usr/share/d%03d/f%03d" % (d, f)
        size = random.randint(512, 8192)
        with open(os.path.join(lower, p), "wb") as fh:
            fh.write(data(size, d * 100 + f))
        files.append((p, size, d * 100 + f))

random.shuffle(files)
copyups, whiteouts = files[:30000], files[30000:31000]
for i, (p, size, seed) in enumerate(copyups):
    os.makedirs(os.path.dirname(os.path.join(upper, p)), exist_ok=True)
    if i % 3 == 0:
        content = data(size, seed)            # touched: same bytes
    elif i % 3 == 1:
        content = data(size, seed + 1)        # same size, other bytes
    else:
        content = data(size + 7, seed)        # other size
    with open(os.path.join(upper, p), "wb") as fh:
        fh.write(content)
for p, _, _ in whiteouts:
    full = os.path.join(upper, p)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    os.mknod(full, 0o600 | 0o020000, 0)
for d in range(690):
    dd = os.path.join(upper, "srv/app/n%03d" % d)
    os.makedirs(dd, exist_ok=True)
    for f in range(100):
        with open(os.path.join(dd, "g%03d" % f), "wb") as fh:
            fh.write(data(random.randint(512, 4096), d + f))
open(os.path.join(root, ".done"), "w").close()
