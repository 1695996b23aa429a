"""The extract stage: media folders and metadata tables -> a ``features`` artifact.

``extract(inputs, out_dir, cfg)`` finds media (folders, files, ``-`` for a list on stdin),
joins a metadata table (by item_id or path) and sidecar text, and runs
:func:`extract_shard` on every new or changed file through an engine (local process pool
or Ray). Per item it keeps builtin audio/video features, ``thumb_size`` thumbnails of the
sampled frames (centre-cropped) and mono PCM, so embed never decodes the media again.

Output is resumable: results are written in shards (``avrec.features.store.write_shard``:
temp directory + rename), each file's fingerprint (path, size, mtime; sha256 with
``extract.hash``) is kept in its row, and a later run reuses every row whose fingerprint
still matches, so a re-run on an unchanged folder does no work and an interrupted run
finishes the rest. A file that cannot be decoded, or that runs past
``extract.item_timeout``, becomes a row with status "failed" and a one-line error.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from contextlib import closing
from pathlib import Path
from typing import Any, Iterable, Protocol, TextIO

import numpy as np

from .artifacts import Manifest, fingerprint, lib_versions, read_jsonl, write_jsonl, write_manifest
from .config import Config, ExtractConfig
from .errors import AvrecError, InputError, TooManyFailures
from .features.store import ITEM_FIELDS, KIND, ItemFeatures, clean_partial, complete_shards, shard_name, write_shard

# bump when the per-item computation changes meaning, so old shards are not reused
FEATURE_VERSION = 1
# a shard is closed at extract.shard_size items or at this many bytes of thumbnails and PCM,
# so the parent's buffer stays bounded whatever the items hold
SHARD_MAX_BYTES = 256 << 20


class Progress(Protocol):
    """What extract reports while it runs (the CLI draws it; None: silent)."""

    def start(self, total: int, reused: int) -> None: ...
    def update(self, row: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Task:
    item_id: str
    path: str
    threads: int = 0  # decoder threads per worker (0: FFmpeg decides)


# ---------------------------------------------------------------------------------------
# per item (runs in worker processes)


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]


def _base_row(item_id: str, path: str | None) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(ITEM_FIELDS)
    row.update(item_id=item_id, path=path, status="ok", error=None, modalities=[], duration=None,
               title="", description="", tags=[], text="")
    return row


def extract_item(task: Task, ecfg: ExtractConfig) -> ItemFeatures:
    """Decode and featurise one file; never raises (a failure is a row)."""
    from .features.visual import VisualAccumulator
    from .media.probe import MediaError, probe
    from .media.video import iter_frames, iter_frames_cv, iter_frames_seek

    row = _base_row(task.item_id, task.path)
    out = ItemFeatures(row=row)
    try:
        info = probe(task.path)
        errors: list[str] = []
        ends: list[float] = []  # how far each decoded stream reaches, seconds
        audio_job = None
        if info.has_audio and info.has_video:
            # the audio (decode, resample, features) runs on a thread beside the video decoding:
            # PyAV, soxr and numpy release the GIL, and sparse video decoding leaves a core idle
            pool = ThreadPoolExecutor(max_workers=1)
            audio_job = pool.submit(_audio_part, task.path, ecfg)
            pool.shutdown(wait=False)
        if info.has_video:
            acc = VisualAccumulator(max_frames=ecfg.max_frames, thumb_size=ecfg.thumb_size,
                                    scene_threshold=ecfg.scene_threshold, duration=info.duration, fps=ecfg.fps)
            last_t = None
            seek = (not ecfg.keyframes and ecfg.decoder == "pyav" and ecfg.seek_min_seconds > 0
                    and info.duration is not None and info.duration >= ecfg.seek_min_seconds
                    and info.duration * ecfg.fps > 2 * ecfg.max_frames)
            try:
                if seek:  # long video: a GOP's worth of decoding per sampled point, not the whole file
                    n = max(1, ecfg.max_frames)
                    times = [(i + 0.5) * info.duration / n for i in range(n)]
                    for t, img, new in iter_frames_seek(task.path, times=times, pair_dt=1.0 / ecfg.fps,
                                                        short_side=ecfg.thumb_size, threads=task.threads):
                        acc.add(t, img, new_segment=new)
                        last_t = t
                else:
                    if ecfg.decoder == "opencv":
                        frames = iter_frames_cv(task.path, fps=ecfg.fps, short_side=ecfg.thumb_size)
                    else:
                        # sampling at a quarter of the frame rate or less: frames nobody refers to
                        # need not be decoded at all
                        sparse = info.fps > 0 and ecfg.fps * 4 <= info.fps
                        frames = iter_frames(task.path, fps=ecfg.fps, short_side=ecfg.thumb_size,
                                             keyframes=ecfg.keyframes, skip_nonref=sparse, threads=task.threads)
                    for t, img in frames:
                        acc.add(t, img)
                        last_t = t
            except MediaError as e:
                errors.append(f"video: {e}")
            vf = acc.features()
            vd = info.video_duration
            if vf is not None and not ecfg.keyframes and vd and last_t is not None and last_t < 0.5 * vd - 1.0:
                # the container promises far more than decodes: a truncated or corrupt file
                raise MediaError(f"truncated or corrupt: video decodes to {last_t:.1f} s of {vd:.1f} s")
            if vf is not None and last_t is not None:
                # key frames can be 10 s apart: the last one decoded says the video reaches about that far
                ends.append(last_t + (10.0 if ecfg.keyframes else 1.0 / ecfg.fps))
            if vf is not None:
                out.video_features = vf
                out.frames, out.frame_times = acc.thumbnails()
                row["modalities"].append("video")
        if info.has_audio:
            try:
                samples, feats, duration, reached = audio_job.result() if audio_job else _audio_part(task.path, ecfg)
                if feats is not None:
                    out.audio_features, out.audio = feats, samples
                    row["modalities"].append("audio")
                    ends.append(reached)
                if info.duration is None and duration:
                    info.duration = duration
            except MediaError as e:
                errors.append(f"audio: {e}")
        if not row["modalities"]:
            raise MediaError("; ".join(errors) or "no decodable audio or video")
        promised = info.duration
        if promised and ends and max(ends) < 0.5 * promised - 1.0:
            # no stream gets near the length the header promises (a WebM cut off after 5 of 30 s)
            raise MediaError(f"truncated or corrupt: decodes to {max(ends):.1f} s of the {promised:.1f} s "
                             "its header promises")
        dur = info.duration
        if promised and ends and max(ends) < 0.9 * promised:
            dur = max(ends)  # record what decodes, not what the header claims
        if dur is None and out.frame_times is not None and len(out.frame_times):
            dur = float(out.frame_times[-1])
        row["duration"] = round(float(dur), 3) if dur is not None else None
    except MediaError as e:
        return failed_item(task.item_id, task.path, str(e))
    except MemoryError:
        return failed_item(task.item_id, task.path, "out of memory while decoding")
    except Exception as e:  # noqa: BLE001 - any decoder surprise is this item's failure, not the run's
        return failed_item(task.item_id, task.path, _one_line(e))
    return out


def _audio_part(path: str, ecfg: ExtractConfig
                ) -> tuple[np.ndarray | None, np.ndarray | None, float | None, float]:
    """(int16 PCM kept for embed, audio features, stream duration, seconds decoded: infinite
    when decoding stopped at the cap) of ``path``; MediaError if none."""
    from .features.audio import audio_features
    from .media.audio import load_audio

    keep = int(ecfg.audio_max_seconds * ecfg.audio_sr)
    feat_n = int(ecfg.feature_audio_seconds * ecfg.audio_sr)
    cap = max(ecfg.audio_max_seconds, ecfg.feature_audio_seconds)
    audio = load_audio(path, sr=ecfg.audio_sr, max_seconds=cap)
    reached = len(audio.samples) / ecfg.audio_sr
    if reached >= cap - 0.5:
        reached = float("inf")  # read up to the cap: says nothing about the rest
    if not len(audio.samples):
        return None, None, audio.duration, 0.0
    if not np.isfinite(audio.samples).all():  # a broken float stream: keep what is a number
        audio.samples = np.nan_to_num(audio.samples, nan=0.0, posinf=1.0, neginf=-1.0)
    feats = audio_features(audio.samples[:feat_n], sr=ecfg.audio_sr, n_mels=ecfg.n_mels)
    # int16 as stored: half the bytes through the pipe and in the shard buffer
    pcm = (np.clip(audio.samples[:keep], -1.0, 1.0) * 32767.0).astype(np.int16)
    return pcm, feats, audio.duration, reached


def failed_item(item_id: str, path: str | None, error: str) -> ItemFeatures:
    row = _base_row(item_id, path)
    row.update(status="failed", error=error.replace("\n", " ")[:300])
    return ItemFeatures(row=row)


def extract_shard(tasks: list[Task], ecfg: ExtractConfig) -> list[ItemFeatures]:
    """The shard function every engine runs: one result per task, in order."""
    try:
        import cv2

        cv2.setNumThreads(1)  # parallelism comes from workers; OpenCV's pool would oversubscribe
    except ImportError:
        pass
    return [extract_item(t, ecfg) for t in tasks]


# ---------------------------------------------------------------------------------------
# the stage: plan (what to do), run (the engine writes shards), write (merge and manifest),
# all inside one transaction on the output (artifacts.transaction, resumable staging)

# imported once by the local pool's fork server, so a new worker starts warm
_PRELOAD = ("avrec.extract", "av", "cv2", "soundfile", "soxr", "avrec.features.audio", "avrec.features.visual",
            "avrec.media.video", "avrec.media.audio")
_STAGING_INFO = ".staging.json"  # in the staging directory: the settings its shards were made with


def _signature(ecfg: ExtractConfig) -> dict[str, Any]:
    """Settings that change what is stored per item: shards made otherwise are not reused."""
    keys = ("fps", "max_frames", "keyframes", "thumb_size", "audio_sr", "audio_max_seconds",
            "feature_audio_seconds", "n_mels", "scene_threshold", "decoder", "seek_min_seconds")
    return {"feature_version": FEATURE_VERSION, **{k: getattr(ecfg, k) for k in keys}}


def _fingerprint(path: str, content_hash: bool) -> dict[str, Any]:
    try:
        return fingerprint(path, content_hash=content_hash)
    except OSError:  # dangling link, unreadable: identify by the link itself
        try:
            st = os.lstat(path)
            return {"path": path, "size": st.st_size, "mtime": int(st.st_mtime_ns)}
        except OSError:
            return {"path": path, "size": -1, "mtime": -1}


def _same(old: dict[str, Any] | None, new: dict[str, Any], content_hash: bool) -> bool:
    if not old:
        return False
    if content_hash and old.get("sha256") and new.get("sha256"):
        return old["sha256"] == new["sha256"] and old.get("path") == new.get("path")
    return all(old.get(k) == new.get(k) for k in ("path", "size", "mtime"))


def _shard_rows(root: Path, only: set[int] | None = None) -> dict[str, dict[str, Any]]:
    """item_id -> its row in the complete shards of ``root`` (later shards supersede earlier)."""
    rows: dict[str, dict[str, Any]] = {}
    for idx in complete_shards(root):
        if only is not None and idx not in only:
            continue
        try:
            for r in read_jsonl(root / "shards" / shard_name(idx) / "items.jsonl"):
                rows[r["item_id"]] = r
        except (OSError, ValueError, KeyError, AvrecError):
            continue  # unreadable shard: its items are simply done again
    return rows


def _read_json(path: Path) -> dict[str, Any] | None:
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _merge_text(row: dict[str, Any], table_row: dict[str, Any] | None, path: str | None,
                listing: dict[str, Any] | None = None) -> dict[str, Any]:
    """Overlay sidecar text then table fields (the table wins) on a media row; add 'text'."""
    from .media.sidecars import read_sidecars

    row = {**row, "title": "", "description": "", "tags": [], "text": ""}
    if path and row["status"] != "skipped":
        fields, _ = read_sidecars(path, listing)
        row.update({k: v for k, v in fields.items() if v})
    if table_row:
        for k in ("title", "description"):
            if table_row.get(k):
                row[k] = table_row[k]
        if table_row.get("tags"):
            row["tags"] = list(table_row["tags"])
    mods = [m for m in row.get("modalities") or [] if m != "text"]
    if row["status"] == "ok" and (row["title"] or row["description"] or row["tags"] or row["text"]):
        mods.append("text")
    row["modalities"] = mods
    return row


@dataclass
class Plan:
    """What one extract run does: the items, which of them to decode, and where rows come from."""

    final: Path  # the artifact being replaced
    staging: Path  # where this run's shards and the next artifact are built
    inputs: list[str]
    media: list[Any]  # MediaFile
    table: Any  # MetadataTable | None
    meta_path: str | Path | None
    sig: dict[str, Any]
    prints: dict[str, dict[str, Any]]  # item_id -> fingerprint
    prior: dict[str, dict[str, Any]]  # item_id -> a reusable media row (from final or staging)
    tasks: list[Task]
    skipped: dict[str, str]  # item_id -> why it is not read (outside its folder)
    reused: int
    next_shard: int
    workers: int
    reusable_final: bool  # final's shards were made with the same settings


def plan_extract(inputs: list[str], final: Path, staging: Path, cfg: Config, *, metadata: str | Path | None,
                 stdin: TextIO | None, strict: bool, follow_outside: bool, say: Any) -> Plan:
    """Find the media, join the table, and decide what must be decoded (nothing is written
    but the staging directory's settings note)."""
    from .engines.local import cpu_count
    from .media.discover import MediaFile, discover, inside, media_kind
    from .media.metadata import load_metadata

    ecfg = cfg.extract
    media = discover(inputs, recursive=ecfg.recursive, stdin=stdin, follow_outside=follow_outside) if inputs else []
    meta_path = metadata or ecfg.metadata or None
    table = load_metadata(meta_path, strict=strict, warn=say) if meta_path else None
    if not media and table is None:
        raise InputError("nothing to extract: pass a media folder or files, '-' for a list on stdin, or --metadata FILE")

    # the table may name media by path (relative to the table) or claim a file's item_id
    if table is not None:
        media = [MediaFile(hit[0], m.path, m.kind, m.outside) if (hit := table.lookup(m.item_id, m.path)) else m
                 for m in media]
    skipped = {m.item_id: f"its real path lies outside {m.outside}; pass --follow-outside to read it"
               for m in media if m.outside}
    if table is not None:
        known = {os.path.realpath(m.path) for m in media}
        roots = [os.path.realpath(table.path.parent)] + [os.path.realpath(i) for i in inputs if i != "-"]
        for iid in table.order:
            p = table.rows[iid].get("path")
            if not p or os.path.realpath(p) in known or not (os.path.exists(p) or os.path.islink(p)):
                continue
            media.append(MediaFile(iid, p, media_kind(p)))
            known.add(os.path.realpath(p))
            # a relative path must stay below the table's folder (or an input): `../../x` is
            # refused; an absolute path is named as explicitly as a file on the command line
            if not follow_outside and table.rows[iid].get("relative") \
                    and not any(inside(os.path.realpath(p), r) for r in roots):
                skipped[iid] = (f"the table's relative path leads outside its folder ({p}); "
                                "pass --follow-outside to read it")
    ids = [m.item_id for m in media]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[0]
        raise InputError(f"two media files map to item_id '{dup}'; give them distinct ids in the metadata table")

    sig = _signature(ecfg)
    # the staging directory resumes a killed run, if that run used the same settings
    info = _read_json(staging / _STAGING_INFO)
    if info is None or info.get("signature") != sig:
        if (staging / "shards").exists():
            say("extract: dropping an interrupted run's shards made with other settings")
        shutil.rmtree(staging / "shards", ignore_errors=True)
        for f in staging.iterdir():
            shutil.rmtree(f, ignore_errors=True) if f.is_dir() else f.unlink()
        from .artifacts import write_json

        write_json(staging / _STAGING_INFO, {"signature": sig})
    clean_partial(staging)
    old = _read_json(final / "manifest.json") or {}
    old_sig = (old.get("extra") or {}).get("extract_signature") if old.get("artifact") == KIND else None
    reusable_final = old_sig == sig
    if old_sig is not None and not reusable_final:
        changed = sorted(k for k in sig if old_sig.get(k) != sig.get(k))
        say(f"extract settings changed ({', '.join(changed)}): extracting every item again "
            f"(the current artifact stays as it is until the new one is complete)")
    prior = _shard_rows(final) if reusable_final else {}
    prior.update(_shard_rows(staging))

    prints = {m.item_id: _fingerprint(m.path, ecfg.hash) for m in media if m.item_id not in skipped}
    todo = [m for m in media if m.item_id not in skipped
            and not _same((prior.get(m.item_id) or {}).get("fingerprint"), prints[m.item_id], ecfg.hash)]
    workers = max(1, ecfg.workers)
    threads = max(1, cpu_count() // workers) if workers > 1 else 0
    used = (complete_shards(final) if reusable_final else []) + complete_shards(staging)
    return Plan(
        final=final, staging=staging, inputs=inputs, media=media, table=table, meta_path=meta_path, sig=sig,
        prints=prints, prior=prior, tasks=[Task(m.item_id, m.path, threads) for m in todo], skipped=skipped,
        reused=len(media) - len(todo) - len(skipped), next_shard=max(used) + 1 if used else 0, workers=workers,
        reusable_final=reusable_final,
    )


def run_extract(plan: Plan, cfg: Config, *, progress: Progress | None) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Decode ``plan.tasks`` through the engine into shards in the staging directory.

    Returns ({item_id: new media row with its shard and row}, run stats). Interrupted, the
    shards already written stay in the staging directory for the next run.
    """
    from .engines import EngineFailure, run
    from .features.audio import audio_feature_names
    from .features.visual import video_feature_names

    ecfg = cfg.extract
    tasks = plan.tasks
    next_shard = plan.next_shard
    new_rows: dict[str, dict[str, Any]] = {}
    buffer: list[ItemFeatures] = []
    stats = {"processed": 0, "media_seconds": 0.0, "wall_seconds": 0.0}
    t_start = time.monotonic()
    audio_dim, video_dim = len(audio_feature_names(n_mels=ecfg.n_mels)), len(video_feature_names())

    def flush() -> None:
        nonlocal next_shard, buffer
        if not buffer:
            return
        write_shard(plan.staging, next_shard, buffer, audio_dim=audio_dim, video_dim=video_dim,
                    thumb_size=ecfg.thumb_size, stats={"wall_seconds": round(time.monotonic() - t_start, 3)})
        for r, it in enumerate(buffer):
            new_rows[it.row["item_id"]] = {**it.row, "shard": next_shard, "row": r}
        next_shard += 1
        buffer = []

    if progress is not None:
        progress.start(len(tasks), plan.reused)
    buffered_bytes = 0
    try:
        limit = ecfg.item_timeout if 0 < ecfg.item_timeout < float("inf") else None  # 0 or inf: no limit
        results = run(cfg.distributed.engine, extract_shard, tasks, ecfg, workers=plan.workers,
                      timeout=limit, address=cfg.distributed.address, preload=_PRELOAD)
        with closing(results):  # stops the workers however the loop ends
            for index, res in results:
                task = tasks[index]
                if isinstance(res, EngineFailure):
                    res = failed_item(task.item_id, task.path, res.error)
                res.row["fingerprint"] = plan.prints[task.item_id]
                buffer.append(res)
                buffered_bytes += sum(x.nbytes for x in (res.frames, res.audio) if x is not None)
                stats["processed"] += 1
                stats["media_seconds"] += float(res.row.get("duration") or 0.0)
                if progress is not None:
                    progress.update(res.row)
                if len(buffer) >= max(1, ecfg.shard_size) or buffered_bytes >= SHARD_MAX_BYTES:
                    flush()
                    buffered_bytes = 0
    except KeyboardInterrupt:
        flush()  # keep what finished: the next run resumes from here
        raise
    finally:
        if progress is not None:
            progress.close()
    flush()
    stats["wall_seconds"] = round(time.monotonic() - t_start, 3)
    return new_rows, stats


def merge_rows(plan: Plan, new_rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every item's row: media (new, reused or skipped) and text-only table rows, by item_id."""
    rows: list[dict[str, Any]] = []
    media_ids = set()
    listing: dict[str, Any] = {}  # each folder listed once for sidecars
    table = plan.table
    for m in plan.media:
        if m.item_id in plan.skipped:
            r = _base_row(m.item_id, m.path)
            r.update(status="skipped", error=plan.skipped[m.item_id])
        else:
            r = new_rows.get(m.item_id) or plan.prior[m.item_id]
        trow = table.rows.get(m.item_id) if table is not None else None
        rows.append(_merge_text(r, trow, m.path, listing))
        media_ids.add(m.item_id)
    if table is not None:
        for iid in table.order:
            if iid in media_ids:
                continue
            trow = table.rows[iid]
            r = _base_row(iid, None)
            if trow.get("path"):  # the table names a file that is not there
                r.update(status="failed", error=f"file not found: {trow['path']}", path=trow["path"])
            r = _merge_text(r, trow, None)
            if r["status"] == "ok" and not r["modalities"]:
                r.update(status="skipped", error="no media and no text in the metadata row")
            rows.append(r)
    rows.sort(key=lambda r: r["item_id"])
    return [{k: r.get(k) for k in ITEM_FIELDS} for r in rows]


def _link_shard(src: Path, dst: Path) -> None:
    """Put a finished shard of the current artifact into the next one: hard links (no copy;
    the files never change), or a copy where the filesystem has no hard links."""
    tmp = dst.parent / f".{dst.name}.tmp-link"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in src.iterdir():
        try:
            os.link(f, tmp / f.name)
        except OSError:
            shutil.copy2(f, tmp / f.name)
    os.replace(tmp, dst)


def write_extract(plan: Plan, rows: list[dict[str, Any]], stats: dict[str, Any], cfg: Config,
                  libs: dict[str, str]) -> Manifest:
    """Complete the staging directory as the next artifact: the shards its rows use (this
    run's, and the current artifact's linked in), items.jsonl, then the manifest."""
    from .features.audio import audio_feature_names
    from .features.visual import video_feature_names

    ecfg = cfg.extract
    used = {r["shard"] for r in rows if r.get("shard") is not None}
    staged = set(complete_shards(plan.staging))
    for idx in sorted(used - staged):
        _link_shard(plan.final / "shards" / shard_name(idx), plan.staging / "shards" / shard_name(idx))
    for idx in staged - used:  # every item in them was re-extracted or removed
        shutil.rmtree(plan.staging / "shards" / shard_name(idx), ignore_errors=True)
    write_jsonl(plan.staging / "items.jsonl", rows)
    counts = {
        "items": len(rows),
        "ok": sum(r["status"] == "ok" for r in rows),
        "failed": sum(r["status"] == "failed" for r in rows),
        "skipped": sum(r["status"] == "skipped" for r in rows),
        "video": sum("video" in r["modalities"] for r in rows),
        "audio": sum("audio" in r["modalities"] for r in rows),
        "text": sum("text" in r["modalities"] for r in rows),
        "text_only": sum(r["modalities"] == ["text"] for r in rows),
        "processed": stats["processed"],
        "reused": plan.reused,
        "shards": len(used),
    }
    inputs_info: dict[str, Any] = {"paths": [os.path.abspath(i) if i != "-" else "-" for i in plan.inputs]}
    if plan.meta_path:
        inputs_info["metadata"] = fingerprint(plan.meta_path)
    manifest = Manifest(
        artifact=KIND,
        config=cfg.to_dict(),
        inputs=inputs_info,
        counts=counts,
        libs=libs,
        extra={
            "audio_feature_names": audio_feature_names(n_mels=ecfg.n_mels),
            "video_feature_names": video_feature_names(),
            "thumb_size": ecfg.thumb_size,
            "thumb_mode": "centre-crop",
            "audio_sr": ecfg.audio_sr,
            "audio_max_seconds": ecfg.audio_max_seconds,
            "extract_signature": plan.sig,
            "run": {**stats, "media_seconds": round(stats["media_seconds"], 3),
                    "realtime_factor": round(stats["media_seconds"] / stats["wall_seconds"], 2)
                    if stats["wall_seconds"] > 0 else None,
                    "workers": plan.workers, "engine": cfg.distributed.engine},
        },
    )
    with contextlib.suppress(OSError):
        os.unlink(plan.staging / _STAGING_INFO)
    write_manifest(plan.staging, manifest)
    return manifest


def extract(
    inputs: Iterable[str | Path],
    out_dir: str | Path,
    cfg: Config,
    *,
    metadata: str | Path | None = None,
    progress: Progress | None = None,
    stdin: TextIO | None = None,
    log: Any = None,
    strict: bool = False,
    follow_outside: bool = False,
) -> Manifest:
    """Run the extract stage; returns the manifest written to ``out_dir``.

    inputs: media folders, media files, or ``-`` (newline-separated paths on ``stdin``).
    metadata: a CSV/JSONL table (item_id, title, description, tags[, path]); overrides
    ``cfg.extract.metadata``. Table rows without media become text-only items.
    strict: unknown table columns are errors. follow_outside: read files whose real path
    lies outside the folder (or table folder) that named them.
    Raises InputError when there is nothing to extract. Failed items are rows; compare
    ``manifest.counts`` with the limits via :func:`check_failures`.
    """
    from .artifacts import transaction

    say = log or (lambda msg: None)
    out = Path(out_dir)
    inputs = [str(i) for i in inputs]
    if any(not i.strip() for i in inputs):
        raise InputError("an input path is an empty string; pass a media folder, media files, or '-'")
    if metadata is not None and not str(metadata).strip():  # `--metadata "$UNSET"`: not "no table"
        raise InputError("the metadata table path is an empty string; pass a CSV or JSONL file to --metadata")
    meta = metadata or cfg.extract.metadata or None
    if inputs and cfg.distributed.engine == "local":
        from .engines.local import prestart

        prestart(_PRELOAD)  # the workers' imports run while the folder is listed and fingerprinted
    # the manifest's library versions (~40 ms of package metadata) are read while workers run
    libs_job = _Background(lib_versions)
    sources = [i for i in inputs if i != "-"] + ([str(meta)] if meta else [])
    with transaction(out, kind=KIND, sources=sources, resume=True) as txn:
        plan = plan_extract(inputs, txn.final, txn.path, cfg, metadata=meta, stdin=stdin, strict=strict,
                            follow_outside=follow_outside, say=say)
        say(f"extract: {len(plan.media)} media file(s), {plan.reused} unchanged, {len(plan.tasks)} to process"
            + (f", {len(plan.skipped)} outside their folder (skipped)" if plan.skipped else "")
            + (f", {len(plan.table.rows)} table row(s)" if plan.table else "") + f" -> {out}")
        new_rows, stats = run_extract(plan, cfg, progress=progress)
        rows = merge_rows(plan, new_rows)
        current = _read_json(txn.final / "manifest.json")
        if not plan.tasks and plan.reusable_final and current is not None and _same_rows(txn.final, rows):
            txn.skip()  # nothing changed: the artifact stays as it is, byte for byte
            say("extract: nothing changed; the artifact is left as it was")
            manifest = _as_manifest(current)
            manifest.counts = {**manifest.counts, "processed": 0, "reused": plan.reused}  # this run's, not on disk
            return manifest
        manifest = write_extract(plan, rows, stats, cfg, libs_job.result())
    return manifest


class _Background:
    """``fn()`` on a daemon thread; :meth:`result` waits for it, and does it itself when the
    thread is stuck. A Ctrl-C that lands in CPython's import machinery of the main thread
    (a module lock's weakref callback) can leave the global import lock taken by the main
    thread for good, so the thread's next import never returns: waiting for it (the result,
    or a ThreadPoolExecutor's join at exit) hung the run forever."""

    def __init__(self, fn: Any):
        import threading

        self._fn = fn
        self._done = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None
        threading.Thread(target=self._run, args=(fn,), name="avrec-extract-background", daemon=True).start()

    def _run(self, fn: Any) -> None:
        try:
            self._value = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller of result()
            self._error = e
        finally:
            self._done.set()

    def result(self, stuck_after: float = 10.0) -> Any:
        if not self._done.wait(stuck_after):  # normally done long ago (it takes ~40 ms)
            return self._fn()
        if self._error is not None:
            raise self._error
        return self._value


def _same_rows(final: Path, rows: list[dict[str, Any]]) -> bool:
    try:
        return read_jsonl(final / "items.jsonl") == rows
    except AvrecError:
        return False


def _as_manifest(data: dict[str, Any]) -> Manifest:
    keys = ("artifact", "schema_version", "avrec_version", "created", "config", "inputs", "models", "counts", "libs",
            "extra", "files", "build_id")
    return Manifest(**{k: data[k] for k in keys if k in data})


def check_failures(manifest: Manifest, max_failed: int) -> None:
    """Raise TooManyFailures (exit 3) when no item succeeded, or when more than
    ``max_failed`` items failed (-1: no limit on failures)."""
    c = manifest.counts
    failed, ok = int(c.get("failed", 0)), int(c.get("ok", 0))
    if ok == 0:
        raise TooManyFailures(f"no item succeeded ({failed} failed, {c.get('skipped', 0)} skipped); see 'error' in "
                              "items.jsonl")
    if max_failed >= 0 and failed > max_failed:
        raise TooManyFailures(f"{failed} item(s) failed, more than --max-failed {max_failed}; see 'error' in items.jsonl")


__all__ = ["extract", "extract_item", "extract_shard", "check_failures", "failed_item", "Task", "Progress",
           "plan_extract", "run_extract", "merge_rows", "write_extract"]
