"""Hostile export cases through the CLI, as a user meets them; one line per case (held / FAILED).

Issue 8's cases, then issue 19's: a folder received from someone else or shared (state files,
outputs and folders that are links out of OUTPUT, a FIFO for run.json), two shard splits at once,
an output cut short, a 90-megapixel input.

    python scripts/hostile_export.py [REPO]      # REPO: the checkout to test (default: this one)

Runs `python -m diffusemix export` with the preview editor in a temporary folder
(removed at the end). The disk-full case mounts a 600 kB tmpfs, so it needs root;
elsewhere it is reported as not tried. Numbers go to the README's table.
"""
import json, os, shutil, signal, socket, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np
from PIL import Image

REPO = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]); W = Path(tempfile.mkdtemp(prefix="dmx-hostile-"))
FR = W / "fractals"
subprocess.run([sys.executable, "-m", "diffusemix", "fractals", str(FR), "--count", "4", "--size", "64"], cwd=REPO, check=True, capture_output=True)
results = []

def data(name, classes=("cat", "dog"), n=4):
    root = W / name
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root

def cli(inp, out, *extra, timeout=180, wait=True):
    cmd = [sys.executable, "-m", "diffusemix", "export", str(inp), str(out), "--editor", "preview", "--prompts", "sunset,snowy",
           "--size", "32", "--fractals", str(FR), "--no-progress", *extra]
    if not wait:
        return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired:
        return "timeout", "", ""

def rows(out):
    return [json.loads(l) for l in (out / "metadata.jsonl").read_text(encoding="utf-8").splitlines()]

def on_disk(out):
    return {p.relative_to(out).as_posix() for p in out.rglob("*.png") if p.is_file() and "stages" not in p.parts and not any(x.startswith(".") for x in p.relative_to(out).parts)}

def errors(out):
    p = out / "errors.jsonl"
    return [json.loads(l) for l in p.read_text(encoding="utf-8").splitlines()] if p.exists() else []

def case(name, fn):
    try:
        ok, note = fn()
    except Exception as e:  # noqa
        ok, note = False, f"{type(e).__name__}: {e}"
    results.append((name, ok, note))
    print(f"{'held  ' if ok else 'FAILED'} {name}: {note}", flush=True)

def c_latin1_file():
    d = data("latin1"); shutil.copy(d / "cat/0.png", os.path.join(os.fsencode(d / "cat"), b"caf\xe9.png"))
    dry = cli(d, W / "o-latin1", "--dry-run"); r = cli(d, W / "o-latin1")
    e = [x for x in errors(W / "o-latin1") if "UTF-8" in x["reason"]]
    return r[0] == 0 and len(rows(W / "o-latin1")) == 16 and len(e) == 1 and "ignored:  1" in dry[1], f"exit {r[0]}, {len(e)} listed; dry run: {[l for l in dry[1].splitlines() if 'ignored' in l]}"

def c_latin1_folder():
    d = data("latin1d"); os.mkdir(os.path.join(os.fsencode(d), b"d\xe9j\xe0")); shutil.copy(d / "cat/0.png", os.path.join(os.fsencode(d), b"d\xe9j\xe0", b"x.png"))
    r = cli(d, W / "o-latin1d")
    return r[0] == 0 and len(rows(W / "o-latin1d")) == 16, f"exit {r[0]}"

def c_newline():
    d = data("nl"); shutil.copy(d / "cat/0.png", d / "cat/a\nb.png")
    r = cli(d, W / "o-nl"); r2 = cli(d, W / "o-nl")
    got = {x["file_name"] for x in rows(W / "o-nl")}
    return r[0] == 0 and got == on_disk(W / "o-nl") and len(got) == 18 and r2[0] == 0, f"{len(got)} rows, {len(on_disk(W / 'o-nl'))} images"

def c_fifo():
    d = data("fifo"); os.mkfifo(d / "cat/x.png"); t = time.time(); r = cli(d, W / "o-fifo", timeout=120)
    return r[0] == 0 and len(rows(W / "o-fifo")) == 16, f"exit {r[0]} in {time.time() - t:.1f} s"

def c_devzero():
    d = data("zero"); os.symlink("/dev/zero", d / "dog/z.png"); r = cli(d, W / "o-zero", "--batch-size", "8")
    return r[0] == 0 and len(rows(W / "o-zero")) == 16, f"exit {r[0]}, {[x['reason'][:40] for x in errors(W / 'o-zero')]}"

def c_huge():
    d = data("huge")
    with open(d / "dog/huge.png", "wb") as f:
        f.truncate(2 * 1024**3)
    t = time.time(); r = cli(d, W / "o-huge")
    return r[0] == 0 and len(rows(W / "o-huge")) == 16, f"exit {r[0]} in {time.time() - t:.1f} s, {[x['reason'][:45] for x in errors(W / 'o-huge')]}"

def c_socket():
    d = data("sock"); s = socket.socket(socket.AF_UNIX); s.bind(str(d / "cat/s.png"))
    r = cli(d, W / "o-sock"); s.close()
    return r[0] == 0 and len(rows(W / "o-sock")) == 16, f"exit {r[0]}"

def c_dangling():
    d = data("dang"); os.symlink("/nonexistent/x.png", d / "cat/gone.png"); r = cli(d, W / "o-dang")
    return r[0] == 0 and any(x["source"] == "cat/gone.png" for x in errors(W / "o-dang")), f"exit {r[0]}"

def c_loop():
    d = data("loop"); os.symlink("..", d / "cat/loop"); os.symlink("../dog", d / "cat/dogs"); os.symlink("dog", d / "alias")
    r = cli(d, W / "o-loop"); got = rows(W / "o-loop")
    return r[0] == 0 and len(got) == 16 and {x.get("class_name", x["label"]) for x in got} == {"cat", "dog"}, f"exit {r[0]}, {len(got)} rows"

def c_empty():
    d = data("empty"); (d / "bird").mkdir(); r = cli(d, W / "o-empty")
    return r[0] == 0 and "empty class folders left out: bird" in r[1], f"exit {r[0]}"

def c_two_runs():
    d = data("two", n=300); out = W / "o-two"
    p = cli(d, out, "--workers", "1", "--batch-size", "2", wait=False); time.sleep(4)
    r = cli(d, out); p.wait(300)
    return r[0] == 2 and "in use by another export" in r[2] and p.returncode == 0 and len(rows(out)) == 1200, f"second: exit {r[0]} '{r[2].strip()[:110]}...'; first exit {p.returncode}"

def c_remix_vs_shard():
    d = data("remix", n=300); out = W / "o-remix"
    cli(d, out, "--save-stages")
    p = cli(d, out, "--save-stages", "--shard", "0/2", "--lam", "0.3", "--reuse-generated", "--workers", "1", "--batch-size", "2", wait=False); time.sleep(4)
    r = cli(d, out, "--save-stages", "--lam", "0.5", "--reuse-generated"); p.wait(300)
    return r[0] == 2 and "in use" in r[2] and p.returncode == 0, f"remix: exit {r[0]}; shard exit {p.returncode}"

def c_shards_together():
    d = data("shards", n=20); out, ref = W / "o-shards", W / "o-shards-ref"
    cli(d, ref)
    a = cli(d, out, "--shard", "0/2", wait=False); b = cli(d, out, "--shard", "1/2", wait=False); a.wait(300); b.wait(300)
    same = (out / "metadata.jsonl").read_bytes() == (ref / "metadata.jsonl").read_bytes()
    return a.returncode == 0 and b.returncode == 0 and same, f"exits {a.returncode}/{b.returncode}, manifest equal to one run: {same}"

def c_kill9_stale_lock():
    d = data("kill", n=60); out, ref = W / "o-kill", W / "o-kill-ref"
    cli(d, ref)
    p = cli(d, out, "--workers", "1", "--batch-size", "2", wait=False); time.sleep(5); p.send_signal(signal.SIGKILL); p.wait()
    r = cli(d, out)
    same = (out / "metadata.jsonl").read_bytes() == (ref / "metadata.jsonl").read_bytes()
    return r[0] == 0 and same and (out / ".diffusemix/lock").exists(), f"rerun exit {r[0]}, same manifest {same}"

def c_disk_full():
    mnt = W / "small"; mnt.mkdir()
    m = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if m.returncode != 0:
        return None, f"cannot mount a small tmpfs here ({m.stderr.strip()[:60]}); tested by monkeypatch only"
    try:
        d = data("full", n=60); out = mnt / "out"
        r = cli(d, out)
        msg = r[2].strip()
        return r[0] != 0 and "disk is full" in msg and "resume" in msg and "Traceback" not in msg, f"exit {r[0]} '{msg[:150]}'"
    finally:
        subprocess.run(["umount", str(mnt)])

def c_2gb_dry_run():
    d = W / "huge"; r = cli(d, W / "o-huge2", "--dry-run")
    return r[0] == 0 and "ignored:  1" in r[1], [l for l in r[1].splitlines() if "ignored" in l or "images:" in l].__str__()

# -- issue 19: a folder received from someone else or shared (links, special files), two splits, cut files --

SECRET = b"not the exporter's to touch\n"

def victim(name):
    v = W / f"victim-{name}"; v.mkdir(); (v / "file.txt").write_bytes(SECRET)
    return v

def untouched(v):
    return (v / "file.txt").read_bytes() == SECRET and sorted(x.name for x in v.iterdir()) == ["file.txt"]

def c_state_link(name):
    def run():
        d = data(f"sl-{name}"); out = W / f"o-sl-{name}"; v = victim(f"sl-{name}")
        (out / ".diffusemix").mkdir(parents=True); os.symlink(v / "file.txt", out / ".diffusemix" / name)
        r = cli(d, out)
        return r[0] == 2 and "symbolic link" in r[2] and name in r[2] and "Traceback" not in r[2] and untouched(v), f"exit {r[0]}, target untouched {untouched(v)}: '{r[2].strip()[-110:]}'"
    return run

def c_state_dir_link():
    d = data("sdl"); out = W / "o-sdl"; v = victim("sdl"); out.mkdir(); os.symlink(v, out / ".diffusemix")
    r = cli(d, out)
    return r[0] == 2 and ".diffusemix" in r[2] and "symbolic link" in r[2] and untouched(v), f"exit {r[0]}, target untouched {untouched(v)}"

def c_output_link():
    d = data("ol"); out = W / "o-ol"; v = victim("ol"); cli(d, out)
    a = out / "cat" / "0_sunset_0.png"; a.unlink(); os.symlink(v / "file.txt", a)
    r = cli(d, out); r2 = cli(d, out, "--lam", "0.5", "--reuse-generated")
    return r[0] == 2 and r2[0] == 2 and "symbolic link" in r[2] and untouched(v), f"rerun exit {r[0]}, remix exit {r2[0]}, target untouched {untouched(v)}"

def c_class_dir_link():
    d = data("cl"); out = W / "o-cl"; v = victim("cl"); cli(d, out)
    shutil.rmtree(out / "dog"); os.symlink(v, out / "dog")
    r = cli(d, out)
    return r[0] == 2 and "leads outside" in r[2] and untouched(v), f"exit {r[0]}, outside folder untouched {untouched(v)}"

def c_fifo_state():
    d = data("fs"); out = W / "o-fs"; (out / ".diffusemix").mkdir(parents=True); os.mkfifo(out / ".diffusemix" / "run.json")
    t = time.time(); r = cli(d, out, timeout=120)
    return r[0] == 2 and "a FIFO" in r[2], f"exit {r[0]} in {time.time() - t:.1f} s"

def c_two_splits():
    d = data("splits", n=300); out = W / "o-splits"
    p = cli(d, out, "--shard", "0/2", "--workers", "1", "--batch-size", "2", wait=False); time.sleep(4)
    r = cli(d, out, "--shard", "0/3"); p.kill(); p.wait()
    return r[0] == 2 and "split of 2 shards" in r[2], f"--shard 0/3 beside a running 0/2: exit {r[0]} '{r[2].strip()[:100]}...'"

def c_truncated():
    d = data("cut"); out, ref = W / "o-cut", W / "o-cut-ref"; cli(d, ref); cli(d, out)
    a = out / "dog" / "1_snowy_0.png"; a.write_bytes(a.read_bytes()[:200])
    r = cli(d, out)
    same = all((out / x["file_name"]).read_bytes() == (ref / x["file_name"]).read_bytes() for x in rows(ref))
    return r[0] == 0 and "made:             1 image" in r[1] and same, f"rerun exit {r[0]}, every file equal to one run: {same}"

def c_bomb_warning():
    import struct, zlib
    d = data("bomb"); w = h = 9500
    row = b"\0" * (1 + (w + 7) // 8); comp = zlib.compressobj(9); body = b"".join(comp.compress(row) for _ in range(64)) + comp.flush()
    chunk = lambda k, b: struct.pack(">I", len(b)) + k + b + struct.pack(">I", zlib.crc32(k + b) & 0xFFFFFFFF)
    (d / "cat" / "big.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    r = cli(d, W / "o-bomb"); e = [x for x in errors(W / "o-bomb") if x["source"] == "cat/big.png"]
    return r[0] == 0 and "DecompressionBombWarning" not in r[2] and e and "90,250,000 pixels" in e[0]["reason"], f"exit {r[0]}, raw warning shown: {'DecompressionBombWarning' in r[2]}"

for name, fn in [("Latin-1 file name", c_latin1_file), ("Latin-1 class folder name", c_latin1_folder), ("file name with a newline", c_newline),
                 ("FIFO named x.png", c_fifo), ("symlink to /dev/zero named .png", c_devzero), ("2 GB sparse junk .png", c_huge),
                 ("2 GB junk: dry run agrees", c_2gb_dry_run), ("unix socket named .png", c_socket), ("dangling symlink .png", c_dangling),
                 ("symlink loop + links to other classes", c_loop), ("empty class folder", c_empty), ("two runs into one folder", c_two_runs),
                 ("remix while a shard runs", c_remix_vs_shard), ("two shards at once", c_shards_together),
                 ("kill -9, then rerun (stale lock)", c_kill9_stale_lock), ("disk full (real tmpfs)", c_disk_full),
                 ("lock file is a link out of OUTPUT", c_state_link("lock")), ("journal is a link out of OUTPUT", c_state_link("rows-0-of-1.jsonl")),
                 ("run.json is a link out of OUTPUT", c_state_link("run.json")), ("state folder is a link out of OUTPUT", c_state_dir_link),
                 ("an output file is a link (rerun, remix)", c_output_link), ("a class folder of OUTPUT is a link out of it", c_class_dir_link),
                 ("run.json is a FIFO", c_fifo_state), ("two shard splits at once", c_two_splits),
                 ("an output cut short, then rerun", c_truncated), ("90 MP input: no raw Pillow warning", c_bomb_warning)]:
    case(name, fn)
held = sum(1 for _, ok, _ in results if ok); tried = sum(1 for _, ok, _ in results if ok is not None)
print(f"\n{tried} cases tried, {held} held")
shutil.rmtree(W, ignore_errors=True)
