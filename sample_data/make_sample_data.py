"""Regenerate avrec's sample catalogue: short real-codec clips, a metadata table, interactions.

    python sample_data/make_sample_data.py            # writes next to this script
    python sample_data/make_sample_data.py -o DIR

Everything is synthesised here (numpy + PyAV), so it is ours to ship (CC0). Four content
"worlds" differ in picture, sound and words, and 80 users each have a clear taste for one
(a few for two), so a recommender that understands content visibly follows taste:

- ocean:  blue frames with slow rolling waves; surf-like filtered noise
- city:   dark frames with fast bright traffic; engine hum and horns
- piano:  warm frames with lit keys; decaying harmonic piano-like notes
- forest: green frames with swaying trunks; bird chirps over wind

Per world: 4 videos (H.264 + AAC .mp4, one of them a brand-new upload nobody has watched),
2 audio-only files (.wav, AAC .m4a) and 1 text-only item that exists only in metadata.csv.
"""

from __future__ import annotations

import argparse
import csv
import math
from fractions import Fraction
from pathlib import Path

import numpy as np

W, H, FPS, SECONDS, SR = 320, 180, 12, 4, 22050

WORLDS = {
    "ocean": {
        "videos": [
            ("Morning surf at the reef", "Slow blue waves roll onto the reef at sunrise; the sound of surf.", "ocean;waves;surf;relax"),
            ("Tide pools and swell", "Gentle swell over tide pools, calm sea and foam.", "ocean;sea;calm"),
            ("Open sea from the bow", "Deep blue water seen from a sailing boat, wind and waves.", "ocean;sailing;waves"),
            ("Storm waves at the pier", "New upload: heavy waves crash against the pier in a storm.", "ocean;waves;storm"),
        ],
        "audio": [
            ("Ocean waves for sleep", "Ten minutes of rolling surf, recorded on a quiet beach.", "ocean;sleep;ambient"),
            ("Harbour at dusk", "Water lapping against boats in a harbour.", "ocean;harbour;ambient"),
        ],
        "text": ("Guide to reading surf forecasts", "How swell period and wind shape the waves at your beach.", "ocean;surf;guide"),
    },
    "city": {
        "videos": [
            ("Night traffic downtown", "Headlights stream through downtown streets at night; engines and horns.", "city;traffic;night"),
            ("Rush hour intersection", "Cars and buses cross a busy intersection at rush hour.", "city;traffic;urban"),
            ("Elevated train pass", "A train roars past on the elevated line above the avenue.", "city;train;urban"),
            ("Taxi ride timelapse", "New upload: a fast timelapse of a taxi ride through the city.", "city;timelapse;traffic"),
        ],
        "audio": [
            ("City street ambience", "Street noise, traffic hum and distant horns.", "city;ambient;urban"),
            ("Subway platform", "Trains arriving and leaving an underground platform.", "city;train;ambient"),
        ],
        "text": ("Urban transport explained", "Why buses, trams and trains move people differently through a city.", "city;transport;guide"),
    },
    "piano": {
        "videos": [
            ("Piano lesson: C major scale", "A beginner piano lesson playing the C major scale slowly.", "piano;music;lesson"),
            ("Evening piano improvisation", "Soft improvised piano chords for an evening.", "piano;music;calm"),
            ("Piano etude practice", "Practising a short etude on an upright piano.", "piano;music;classical"),
            ("Duet for four hands", "New upload: two players share one piano in a lively duet.", "piano;music;duet"),
        ],
        "audio": [
            ("Slow piano for studying", "Calm piano pieces to study and focus.", "piano;music;study"),
            ("Piano arpeggios", "Rolling arpeggios across the keyboard.", "piano;music;practice"),
        ],
        "text": ("History of the piano", "From the fortepiano to the modern concert grand.", "piano;music;history"),
    },
    "forest": {
        "videos": [
            ("Birdsong in the beech forest", "Sunlight through beech trees while birds sing.", "forest;birds;nature"),
            ("Pine forest in the wind", "Tall pines sway in the wind; birds call.", "forest;wind;nature"),
            ("Woodland trail walk", "A quiet walk along a woodland trail in spring.", "forest;hiking;nature"),
            ("Dawn chorus in the woods", "New upload: the dawn chorus of songbirds in an old forest.", "forest;birds;dawn"),
        ],
        "audio": [
            ("Forest birdsong", "Songbirds and a light breeze in the forest.", "forest;birds;ambient"),
            ("Woodpecker and wind", "A woodpecker drums while wind moves the canopy.", "forest;birds;wind"),
        ],
        "text": ("Identifying forest birds by song", "A field guide to the songs of common woodland birds.", "forest;birds;guide"),
    },
}


# --------------------------------------------------------------------------------- pictures


def frame(world: str, t: float, rng_seed: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB picture of ``world`` at time ``t`` seconds."""
    rng = np.random.default_rng(rng_seed)
    ph = rng.uniform(0, 2 * np.pi)
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    img = np.zeros((H, W, 3), np.float32)
    if world == "ocean":
        wave = np.sin(x / 23.0 + t * 1.5 + ph + 0.3 * np.sin(y / 9.0)) * 0.5 + 0.5
        img[..., 0] = 20 + 30 * wave
        img[..., 1] = 80 + 60 * wave * (y / H)
        img[..., 2] = 150 + 90 * wave
        foam = (np.sin(x / 7.0 - t * 3 + ph) > 0.95) & (y > H * 0.6)
        img[foam] = 235
    elif world == "city":
        img[:] = (30, 30, 38)
        img[int(H * 0.55):int(H * 0.8)] = (60, 60, 64)  # road
        for k in range(6):
            speed = 90 + 40 * k
            cx = (t * speed + k * 61 + ph * 40) % (W + 60) - 30
            cy = int(H * 0.58 + (k % 3) * 14)
            x0, x1 = int(max(cx - 14, 0)), int(min(cx + 14, W))
            if x1 > x0:
                img[cy:cy + 8, x0:x1] = (250, 230, 120) if k % 2 else (230, 40, 40)
        for k in range(10):  # windows
            wx = int((k * 37 + ph * 10) % W)
            img[10:int(H * 0.5):12, wx:wx + 5] = (200, 190, 90)
    elif world == "piano":
        img[:] = (70, 40, 25)
        keys = 14
        kw = W // keys
        lit = int((t * 3 + ph * 3) % keys)
        for k in range(keys):
            x0 = k * kw
            colour = (255, 230, 160) if k == lit else (235, 235, 225)
            img[int(H * 0.5):, x0 + 1:x0 + kw - 1] = colour
            if k % 7 not in (2, 6):
                img[int(H * 0.5):int(H * 0.75), x0 + kw - 4:x0 + kw + 4] = (15, 15, 15)
    else:  # forest
        img[..., 0] = 40 + 30 * (y / H)
        img[..., 1] = 110 + 50 * (1 - y / H)
        img[..., 2] = 35
        for k in range(7):
            sway = 6 * math.sin(t * 1.2 + k + ph)
            x0 = int((k * 47 + 20 + sway + ph * 5) % W)
            img[:, max(x0 - 4, 0):x0 + 4] = (90, 60, 30)
        spots = (np.sin(x / 5 + t) * np.sin(y / 7 - t) > 0.9)
        img[spots] = (200, 230, 120)
    return np.clip(img, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------ sound


def sound(world: str, seconds: float, seed: int, sr: int = SR) -> np.ndarray:
    """(n,) float32 mono in [-1, 1]."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    if world == "ocean":
        noise = rng.normal(0, 1, n)
        # low-pass (leaky integrator) brown-ish noise, swelling every few seconds
        from scipy.signal import lfilter

        surf = lfilter([0.02], [1, -0.98], noise)
        env = 0.5 + 0.5 * np.sin(2 * np.pi * t / rng.uniform(2.5, 4.0)) ** 2
        x = surf * env
    elif world == "city":
        f0 = rng.uniform(70, 110)
        hum = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 6))
        x = 0.3 * hum + 0.2 * rng.normal(0, 1, n)
        for start in rng.uniform(0, seconds - 0.5, 2):  # horns
            m = (t > start) & (t < start + 0.35)
            x[m] += 0.8 * np.sign(np.sin(2 * np.pi * 440 * t[m]))
    elif world == "piano":
        x = np.zeros(n)
        scale = [261.6, 293.7, 329.6, 349.2, 392.0, 440.0, 493.9, 523.3]
        step = rng.uniform(0.3, 0.5)
        for k, start in enumerate(np.arange(0, seconds - 0.2, step)):
            f = scale[(k * (1 + seed % 3)) % len(scale)]
            m = t >= start
            tt = t[m] - start
            note = sum(np.sin(2 * np.pi * f * h * tt) * 0.6 ** h for h in range(1, 5))
            x[m] += note * np.exp(-3.0 * tt)
    else:  # forest
        from scipy.signal import lfilter

        x = 0.05 * lfilter([0.1], [1, -0.9], rng.normal(0, 1, n))  # wind
        for start in rng.uniform(0, seconds - 0.3, int(seconds * 3)):
            m = (t > start) & (t < start + 0.12)
            tt = t[m] - start
            f = rng.uniform(2500, 4000) + 8000 * tt
            x[m] += 0.5 * np.sin(2 * np.pi * f * tt) * np.hanning(m.sum())
    x = x / (np.abs(x).max() + 1e-9) * 0.8
    return x.astype(np.float32)


# ---------------------------------------------------------------------------------- writers


def write_video(path: Path, world: str, seed: int) -> None:
    import av

    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
        vs.options = {"crf": "30", "preset": "veryfast", "g": str(FPS * 2)}
        as_ = out.add_stream("aac", rate=SR)
        as_.layout = "mono"
        for i in range(FPS * SECONDS):
            vf = av.VideoFrame.from_ndarray(frame(world, i / FPS, seed), format="rgb24")
            for p in vs.encode(vf):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
        pcm = sound(world, SECONDS, seed)
        hop = 1024
        for k, s in enumerate(range(0, len(pcm), hop)):
            chunk = pcm[s:s + hop][None, :]
            af = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            af.sample_rate = SR
            af.pts = s
            af.time_base = Fraction(1, SR)
            for p in as_.encode(af):
                out.mux(p)
        for p in as_.encode():
            out.mux(p)


def write_audio(path: Path, world: str, seed: int, seconds: float = 5.0) -> None:
    pcm = sound(world, seconds, seed)
    if path.suffix == ".wav":
        import soundfile as sf

        sf.write(str(path), (pcm * 32767).astype(np.int16), SR, subtype="PCM_16")
        return
    import av

    with av.open(str(path), "w") as out:
        st = out.add_stream("aac", rate=SR)
        st.layout = "mono"
        hop = 1024
        for s in range(0, len(pcm), hop):
            af = av.AudioFrame.from_ndarray(pcm[s:s + hop][None, :], format="flt", layout="mono")
            af.sample_rate = SR
            af.pts = s
            af.time_base = Fraction(1, SR)
            for p in st.encode(af):
                out.mux(p)
        for p in st.encode():
            out.mux(p)


SUBTITLES = """1
00:00:00,000 --> 00:00:02,000
Place your thumb on middle C.

2
00:00:02,000 --> 00:00:04,000
Now play the scale up slowly, one finger per key.
"""


def interactions(items: dict[str, list[str]], new_items: set[str], seed: int = 7) -> list[tuple]:
    """80 users, 20 per world; each watches most of their world and a little else.

    Rows: (user_id, item_id, timestamp, event). ``new_items`` get no interactions at all.
    """
    rng = np.random.default_rng(seed)
    worlds = list(items)
    rows = []
    t0 = 1_700_000_000
    for u in range(80):
        uid = f"u{u + 1:03d}"
        home = worlds[u % 4]
        tastes = [home] + ([worlds[(u + 1) % 4]] if u % 10 == 9 else [])
        seen = []
        for w in tastes:
            pool = [i for i in items[w] if i not in new_items]
            # 3 to 5 of the 6 watchable items: something of their own world is always left to find
            take = rng.choice(pool, size=int(rng.integers(3, len(pool))), replace=False)
            seen.extend(take)
        others = [i for w in worlds if w not in tastes for i in items[w] if i not in new_items]
        if rng.random() < 0.5:
            seen.append(rng.choice(others))
        for k, it in enumerate(rng.permutation(seen)):
            event = "like" if rng.random() < 0.3 else "view"
            rows.append((uid, str(it), t0 + u * 1000 + k * 60, event))
    return rows


def main(out: Path) -> None:
    media = out / "media"
    media.mkdir(parents=True, exist_ok=True)
    meta, by_world, new_items = [], {}, set()
    seed = 0
    for world, spec in WORLDS.items():
        ids = []
        for k, (title, desc, tags) in enumerate(spec["videos"]):
            item = f"{world}_video_{k + 1}"
            write_video(media / f"{item}.mp4", world, seed := seed + 1)
            meta.append((item, title, desc, tags))
            ids.append(item)
            if desc.startswith("New upload"):
                new_items.add(item)
        for k, (title, desc, tags) in enumerate(spec["audio"]):
            item = f"{world}_audio_{k + 1}"
            write_audio(media / f"{item}{'.wav' if k == 0 else '.m4a'}", world, seed := seed + 1)
            meta.append((item, title, desc, tags))
            ids.append(item)
        title, desc, tags = spec["text"]
        item = f"{world}_article"
        meta.append((item, title, desc, tags))
        ids.append(item)
        by_world[world] = ids
    (media / "piano_video_1.srt").write_text(SUBTITLES, encoding="utf-8")
    with open(out / "metadata.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["item_id", "title", "description", "tags"])
        w.writerows(meta)
    with open(out / "interactions.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["user_id", "item_id", "timestamp", "event"])
        w.writerows(interactions(by_world, new_items))
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {len(meta)} items ({len(new_items)} new uploads) to {out} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--out", type=Path, default=Path(__file__).resolve().parent)
    main(ap.parse_args().out)
