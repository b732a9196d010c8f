"""Algorithm 2 as one job: :class:`IdentitiesConfig` in, ``OUT/`` and the summary out
(:func:`run_identities`; the command line is ``pyface label identities``).

Every input is checked and opened before any long work (datasets, the verification
``.bin``, the Algorithm-1 shards and their sources, the nets); an error names the
configuration field (``threshold_b``, ``datasets['vgg']``) -- or, through ``name_of``,
however the caller spells it (the command line passes its flags: ``--threshold-b``,
``--dataset vgg``).
"""
from __future__ import annotations

import os
import re
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from pyface.data.base import FaceDataset
from pyface.errors import ConfigError, DataError, OutputError
from pyface.io import write_json_atomic
from pyface.label.identities.embed import (
    DEFAULT_CHUNK,
    DEFAULT_FACE_CROP_AREA,
    FRNet,
    IdentityEmbeddings,
    embed_identities,
    pair_scores,
)
from pyface.label.identities.manifest import (
    IDENTITY_MAP_HEADER,
    MERGES_HEADER,
    Resolver,
    check_sources,
    shard_files,
    write_csv,
    write_pltd,
)
from pyface.label.identities.merge import (
    DUPLICATE_SCOPES,
    SEMI_NAME,
    calibrate_threshold,
    merge_identities,
    merge_quality,
    pair_precision_recall,
    pooled,
    semi_identify_labels,
)

__all__ = ["IdentitiesConfig", "field_name", "run_identities"]


@dataclass
class IdentitiesConfig:
    """One run of Algorithm 2.

    ``datasets``: ``{NAME: spec or dataset}`` (spec: see :mod:`pyface.data.spec`), in the
    order that numbers the new identities. ``net_a``/``net_b``: checkpoint paths, models or
    :class:`~pyface.label.identities.embed.FRNet`. Thresholds: both given, or
    ``calibrate`` (a verification ``.bin``) or ``calibration_pairs`` = ``(images [2P, 3,
    H, W] uint8, issame [P])``. ``semi_identify``: the 300W-LP spec/dataset (named
    ``semi_name``); its manifest rows carry its own ground-truth labels
    (``semi_labels="dataset"``, the paper's training set) or Algorithm 1's
    (``"landmarks"``). ``landmarks``: the Algorithm-1 output folder(s) (one ``pyface label
    landmarks`` run per dataset; without them no manifest is written); images Algorithm 1
    rejected are left out unless ``keep_rejected``. ``duplicate_scope``: "all" (the paper's
    Algorithm 2: one list over every identity, so duplicates inside one dataset merge
    too, in both searches) or "cross" (only pairs of different datasets; SemiIdentify
    only merged-vs-300W-LP). ``ground_truth``: ``{NAME: callable
    old_id -> person}`` (300W-LP: called with the source-face name); the summary then has
    pair precision/recall of the final merge. ``on_unit(k)``: called after each embedding
    unit is written (tests interrupt with it)."""

    datasets: dict
    net_a: Any
    net_b: Any
    out: str
    threshold_a: float | None = None
    threshold_b: float | None = None
    calibrate: str | None = None
    calibration_pairs: tuple | None = None
    semi_identify: Any = None
    semi_name: str = SEMI_NAME
    landmarks: Any = None
    keep_rejected: bool = False
    semi_labels: str = "dataset"
    duplicate_scope: str = "all"
    ground_truth: dict | None = None
    batch_size: int = 64
    chunk_size: int = DEFAULT_CHUNK
    face_crop_area: float = DEFAULT_FACE_CROP_AREA
    device: str | None = None
    amp: bool = True
    workers: int = 0
    resume: bool = False
    progress: bool = True
    on_unit: Callable[[int], None] | None = None
    #: ``pyface label finalize``: embed nothing, every unit must be on disk already.
    complete: bool = False


def field_name(name: str, key: str | None = None) -> str:
    """How an error names a field of :class:`IdentitiesConfig` (``threshold_a``;
    ``datasets['vgg']`` for one entry)."""
    return name if key is None else f"{name}[{key!r}]"


@dataclass
class _Inputs:
    """The opened inputs of a run, checked before any long work."""

    datasets: dict                 # NAME -> dataset (the FR datasets, in order)
    semi: Any                      # the SemiIdentify dataset or None
    pairs: tuple | None            # calibration (images, issame) or None
    resolver: Resolver
    files: list[str] | None        # Algorithm-1 shards, or None (no manifest)
    net_a: FRNet
    net_b: FRNet


def _check_thresholds(c: IdentitiesConfig, name_of) -> None:
    given = (c.threshold_a is not None, c.threshold_b is not None)
    calibrated = c.calibrate is not None or c.calibration_pairs is not None
    ta, tb, cal = name_of("threshold_a"), name_of("threshold_b"), name_of("calibrate")
    if calibrated and any(given):
        raise ConfigError(f"give either {ta}/{tb} or {cal}, not both")
    if not calibrated and not all(given):
        raise ConfigError(f"thresholds: give both {ta} and {tb}, or {cal} (a verification .bin)")
    for what, t in ((ta, c.threshold_a), (tb, c.threshold_b)):
        if t is not None and not -1.0 <= float(t) <= 1.0:
            raise ConfigError(f"{what} must be a cosine similarity in [-1, 1], got {t}")


def _open(spec, what: str):
    """A dataset object as is; a spec through :func:`pyface.data.open_dataset`, errors naming ``what``."""
    from pyface.data import open_dataset

    if not isinstance(spec, (str, dict, os.PathLike)):
        return spec
    try:
        return open_dataset(spec)
    except (FileNotFoundError, ValueError) as exc:  # open_dataset's errors name the spec, not the field
        raise DataError(f"{what}: {exc}") from exc


def _load_pairs(path: str, what: str):
    """(VerificationBin dataset, issame [P]) of an insightface verification ``.bin``."""
    from pyface.data.verification_bin import VerificationBin

    try:
        ds = VerificationBin(path)
    except (FileNotFoundError, ValueError) as exc:
        raise DataError(f"{what}: {exc}") from exc
    return ds, np.asarray(ds.issame, dtype=bool)


def _open_inputs(c: IdentitiesConfig, name_of, part=None) -> _Inputs:
    """Check the configuration and open every input, in the order that fails fastest.
    (A job-array ``part`` joins the embedding folders its sibling parts created.)"""
    if not c.datasets:
        raise ConfigError(f"{name_of('datasets')}: give at least one dataset")
    _check_thresholds(c, name_of)
    names = list(c.datasets)
    if c.duplicate_scope not in DUPLICATE_SCOPES:
        raise ConfigError(f"{name_of('duplicate_scope')} must be one of {list(DUPLICATE_SCOPES)}, "
                          f"got {c.duplicate_scope!r}")
    if c.semi_labels not in ("dataset", "landmarks"):
        raise ConfigError(f"{name_of('semi_labels')} must be 'dataset' or 'landmarks', got {c.semi_labels!r}")
    if c.semi_identify is not None and c.semi_name in names:
        raise ConfigError(f"{name_of('datasets', c.semi_name)}: the name {c.semi_name!r} is reserved for "
                          f"{name_of('semi_identify')}")
    for n in names:
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", n):
            raise ConfigError(f"{name_of('datasets', n)}: use letters, digits, '_', '-', '.' in a dataset name")
    pairs = _load_pairs(c.calibrate, name_of("calibrate")) if c.calibrate is not None else c.calibration_pairs
    built = {}
    for n, spec in c.datasets.items():
        ds = _open(spec, name_of("datasets", n))
        if len(ds) == 0:
            raise DataError(f"{name_of('datasets', n)}: the dataset is empty")
        built[n] = ds
    semi = None
    if c.semi_identify is not None:
        semi = _open(c.semi_identify, name_of("semi_identify"))
        if len(semi) == 0:
            raise DataError(f"{name_of('semi_identify')}: the dataset is empty")
    every = {**built, **({c.semi_name: semi} if semi is not None else {})}
    resolver = Resolver(every, c.semi_name if semi is not None else None)
    files = shard_files(c.landmarks, name_of("landmarks")) if c.landmarks is not None else None
    if files:
        check_sources(files, resolver, name_of("datasets"))
    _refuse_existing(c, every, name_of, part)
    fa = c.net_a if isinstance(c.net_a, FRNet) else FRNet(c.net_a, name_of("net_a"), device=c.device, amp=c.amp)
    fb = c.net_b if isinstance(c.net_b, FRNet) else FRNet(c.net_b, name_of("net_b"), device=c.device, amp=c.amp)
    return _Inputs(built, semi, pairs, resolver, files, fa, fb)


def _refuse_existing(c: IdentitiesConfig, names, name_of, part=None) -> None:
    """A finished or started run in OUT is continued only with resume (a job-array part
    joins the embedding folders its sibling parts created)."""
    for n in names:
        folder = os.path.join(c.out, "embeddings", n)
        if part is None and not c.resume and os.path.exists(os.path.join(folder, "config.json")):
            raise OutputError(f"{folder} already holds a run; set {name_of('resume')} to continue it or choose "
                              f"another {name_of('out')}")


def _calibrate(c: IdentitiesConfig, inp: _Inputs, name_of) -> dict:
    """Both thresholds as the best-accuracy threshold on the calibration pairs."""
    images, issame = inp.pairs
    issame = np.asarray(issame, bool)
    calib = {}
    for key, net in (("a", inp.net_a), ("b", inp.net_b)):
        scores = pair_scores(net, images, c.batch_size, c.workers)
        if len(scores) != len(issame):
            what = name_of("calibrate" if c.calibrate is not None else "calibration_pairs")
            raise DataError(f"{what}: {len(scores)} pairs of images but {len(issame)} issame labels")
        t = calibrate_threshold(scores, issame)
        calib[key] = {"threshold": t, "accuracy": float(((scores >= t) == issame).mean()), "pairs": len(issame)}
    return calib


def _embed(c: IdentitiesConfig, inp: _Inputs, name_of, split) -> tuple[list[IdentityEmbeddings] | None,
                                                                        IdentityEmbeddings | None]:
    """Step 1 for every dataset (and the SemiIdentify set, one identity per source face);
    (None, None) on the processes that do not write the final files (split)."""
    groups = []
    common = dict(batch_size=c.batch_size, chunk_size=c.chunk_size, face_crop_area=c.face_crop_area,
                  workers=c.workers, resume=c.resume, progress=c.progress, on_unit=c.on_unit, split=split,
                  complete=c.complete)
    for n, ds in inp.datasets.items():
        groups.append(embed_identities(n, ds, inp.net_a, inp.net_b, os.path.join(c.out, "embeddings", n),
                                       spec=c.datasets[n], **common))
        if groups[-1] is not None and not len(groups[-1]):
            raise DataError(f"{name_of('datasets', n)}: no image could be embedded ({groups[-1].bad} unreadable, "
                            f"{groups[-1].unlabeled} without identity; e.g. {groups[-1].bad_examples[:1]})")
    semi_group = None
    semi = inp.semi
    if semi is not None:
        if not isinstance(semi, FaceDataset):
            raise ConfigError(f"{name_of('semi_identify')}: needs a file-backed 300W-LP dataset (the file names "
                              "carry the source 300W face)")
        labels, keys = semi_identify_labels([semi.describe(i) for i in range(len(semi))])
        semi_group = embed_identities(c.semi_name, semi, inp.net_a, inp.net_b,
                                      os.path.join(c.out, "embeddings", c.semi_name),
                                      labels=labels, keys=keys, spec=c.semi_identify, **common)
        inp.resolver.semi_name = c.semi_name
    if not split.writes_final:
        return None, None
    return groups, semi_group


def run_identities(config: IdentitiesConfig, *, name_of: Callable[..., str] = field_name, split=None) -> dict | None:
    """Algorithm 2 end to end; returns the summary (also written to ``OUT/summary.json``).
    ``OUT`` is locked for the job's lifetime (:meth:`pyface.work_split.WorkSplit.lock`).

    ``name_of(field, key=None)``: how errors name a configuration field (default
    :func:`field_name`; the command line maps fields to its flags).

    ``split`` (:class:`pyface.work_split.WorkSplit`; default: this process alone): the
    embedding pass -- two FR nets over every image, the
    expensive part -- is dealt to the ranks by units of ``chunk_size`` images; the
    per-identity sums are added in unit order, so they are the same bit for bit for any
    number of ranks. Calibration, the duplicate search, the merge and the manifest run on
    rank 0, which returns the summary; the other ranks (and job-array parts, which embed
    their units only and leave the rest to ``pyface label finalize``) return None."""
    from pyface.work_split import WorkSplit

    t_start = time.perf_counter()
    split = split or WorkSplit()
    # every rank checks its inputs (reads only) before any creates OUT: a bad input fails everywhere, leaving no trace
    inp = split.agree(_open_inputs, config, name_of, split.part)
    with split.lock(config.out, "identities run"):
        split.on_leader(_refuse_existing, config, list(inp.datasets) + ([config.semi_name] if inp.semi is not None
                        else []), name_of, split.part)  # again, under the lock
        return _run_identities(config, inp, name_of, t_start, split)


def _run_identities(config: IdentitiesConfig, inp: _Inputs, name_of: Callable[..., str], t_start: float,
                    split) -> dict | None:
    c = config
    fa, fb = inp.net_a, inp.net_b
    os.makedirs(c.out, exist_ok=True)
    timing = {}

    # thresholds (on the process that merges; before the long pass, so a bad pair set fails early)
    calib = None
    threshold_a, threshold_b = c.threshold_a, c.threshold_b
    if inp.pairs is not None and split.writes_final:
        t0 = time.perf_counter()
        calib = _calibrate(c, inp, name_of)
        threshold_a, threshold_b = calib["a"]["threshold"], calib["b"]["threshold"]
        timing["calibrate_s"] = time.perf_counter() - t0

    # step 1: embeddings
    t0 = time.perf_counter()
    groups, semi_group = _embed(c, inp, name_of, split)
    timing["embed_s"] = time.perf_counter() - t0
    if groups is None:
        return None

    # steps 2-3: duplicates across the FR datasets, union-find
    t0 = time.perf_counter()
    new_ids, edges = merge_identities(groups, threshold_a, threshold_b, fa.device, scope=c.duplicate_scope)
    n_merged = int(max((x.max() + 1 for x in new_ids if len(x)), default=0))
    merges = [("fr", groups[ga].name, groups[ga].key(a - off[ga]), groups[gb].name, groups[gb].key(b - off[gb]),
               float(sa), float(sb))
              for off in [np.cumsum([0] + [len(g) for g in groups])]
              for a, b, sa, sb, ga, gb in zip(edges["node_a"], edges["node_b"], edges["sim_a"], edges["sim_b"],
                                              edges["group_a"], edges["group_b"])]
    merges_per_pair = {}
    for m in merges:
        k = f"{m[1]}~{m[3]}"
        merges_per_pair[k] = merges_per_pair.get(k, 0) + 1
    final_ids = list(new_ids)
    semi_new = None
    semi_stats = None
    # step 4: SemiIdentify against the merged identities
    if semi_group is not None:
        merged = pooled(groups, new_ids)
        ids2, edges2 = merge_identities([merged, semi_group], threshold_a, threshold_b, fa.device,
                                        scope=c.duplicate_scope)
        remap, semi_new = ids2
        final_ids = [remap[x] for x in new_ids]
        names2 = ("merged", c.semi_name)

        def end(node, g):  # (dataset, key) of one end of a SemiIdentify edge
            return (names2[g], str(int(node))) if g == 0 else (names2[g], semi_group.key(int(node) - len(merged)))

        for a, b, sa, sb, ga, gb in zip(edges2["node_a"], edges2["node_b"], edges2["sim_a"], edges2["sim_b"],
                                        edges2["group_a"], edges2["group_b"]):
            merges.append(("semi", *end(a, ga), *end(b, gb), float(sa), float(sb)))
            k = f"{names2[ga]}~{names2[gb]}"
            merges_per_pair[k] = merges_per_pair.get(k, 0) + 1
        cross = (edges2["group_a"] == 0) & (edges2["group_b"] == 1)
        semi_stats = {"source_faces": len(semi_group), "images": semi_group.images,
                      "matched_to_fr": int(len(np.unique(edges2["node_b"][cross]))),
                      "merges": int(len(edges2["node_a"]))}
        merges_per_pair.setdefault(f"merged~{c.semi_name}", 0)
    timing["merge_s"] = time.perf_counter() - t0
    all_groups = groups + ([semi_group] if semi_group is not None else [])
    all_new = final_ids + ([semi_new] if semi_new is not None else [])
    quality = merge_quality(all_groups, all_new, skip=(c.semi_name,))
    if quality["chained_identities"]:
        within = int((edges["group_a"] == edges["group_b"]).sum())
        why = (f"{within} within-dataset duplicate pairs (the paper's scope merges them) or chains through false "
               "matches" if c.duplicate_scope == "all" else "duplicate chains through false matches")
        warnings.warn(f"{quality['chained_identities']} new identities join several identities of one dataset "
                      f"(largest: {quality['largest_identity']} old identities) -- {why}; if that is more than the "
                      "datasets' label noise, consider stricter thresholds (see summary.json 'quality', merges.csv)",
                      RuntimeWarning, stacklevel=2)
    resolver = inp.resolver
    for g, nid in zip(all_groups, all_new):
        if g.name == c.semi_name and semi_group is not None:
            resolver.semi_map = {g.key(i): int(nid[i]) for i in range(len(g))}
        else:
            resolver.maps[g.name] = (g.ids, nid)
    n_after = int(max((x.max() + 1 for x in all_new if len(x)), default=0))

    write_csv(os.path.join(c.out, "identity_map.csv"), IDENTITY_MAP_HEADER,
              ((g.name, g.key(i), int(nid[i]), int(g.counts[i]))
               for g, nid in zip(all_groups, all_new) for i in range(len(g))))
    write_csv(os.path.join(c.out, "merges.csv"), MERGES_HEADER, merges)

    manifest = None
    if inp.files is not None:
        t0 = time.perf_counter()
        own = inp.semi if inp.semi is not None and c.semi_labels == "dataset" else None
        manifest = write_pltd(os.path.join(c.out, "manifest.parquet"), inp.files, resolver, c.keep_rejected, own,
                              c.workers)
        timing["manifest_s"] = time.perf_counter() - t0

    summary = {
        "datasets": {g.name: {"identities": len(g), "images": g.images, "embedded": int(g.counts.sum()),
                              "bad": g.bad, "unlabeled": g.unlabeled, "bad_examples": g.bad_examples}
                     for g in all_groups},
        "identities_before": int(sum(len(g) for g in all_groups)),
        "identities_before_fr": int(sum(len(g) for g in groups)),
        "identities_after_fr_merge": n_merged,
        "identities_after": n_after,
        "merges": len(merges), "merges_per_dataset_pair": merges_per_pair, "quality": quality,
        "duplicate_scope": c.duplicate_scope,
        "within_dataset_merges": int((edges["group_a"] == edges["group_b"]).sum()),
        "thresholds": {"a": float(threshold_a), "b": float(threshold_b), "calibration": calib},
        "semi_identify": semi_stats, "manifest": manifest,
        "nets": {"a": fa.describe() | {"dim": fa.dim, "path": fa.path},
                 "b": fb.describe() | {"dim": fb.dim, "path": fb.path}},
        "device": str(fa.device), "keep_rejected": c.keep_rejected,
        "seconds": {**timing, "total_s": time.perf_counter() - t_start},
    }
    if c.ground_truth is not None:
        truth, pred = [], []
        for g, nid in zip(all_groups, all_new):
            fn = c.ground_truth.get(g.name)
            if fn is None:
                raise ConfigError(f"{name_of('ground_truth')} has no entry for dataset {g.name!r}")
            truth += [str(fn(g.keys[i] if g.keys is not None else int(g.ids[i]))) for i in range(len(g))]
            pred += list(nid)
        _, tcodes = np.unique(np.asarray(truth, dtype=object), return_inverse=True)
        summary["ground_truth"] = pair_precision_recall(np.asarray(pred), tcodes)
    write_json_atomic(os.path.join(c.out, "summary.json"), summary)
    return summary
