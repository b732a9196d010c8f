"""Algorithm 2 of Lee et al. 2024 (Sec. 3.1): one deduplicated identity space across
face-recognition datasets, found with two FR networks (``pyface label identities``;
:func:`run_identities` with an :class:`IdentitiesConfig`).

Modules by concern: :mod:`~pyface.label.identities.embed` (the FR nets and the
per-identity embedding pass), :mod:`~pyface.label.identities.merge` (duplicates,
union-find, pooled sums, SemiIdentify, thresholds, merge quality),
:mod:`~pyface.label.identities.manifest` (the PLTD manifest, identity_map.csv,
merges.csv) and :mod:`~pyface.label.identities.job` (the configuration and the job).

Steps (the paper's line numbers):

1. Embeddings (l.1-12). Per identity of every dataset, the mean embedding under each
   net: every image and its mirror go through the net, the two embeddings are summed
   and L2-normalised (insightface's flip-sum), and the per-identity sums of those unit
   vectors are accumulated. Images are cropped to the net input first: images with
   known landmarks (300W-LP) by a square of ``face_crop_area`` times the landmark box
   area, others (aligned FR crops) whole. The work is cut into units of ``chunk_size``
   images; each unit's per-identity sums are an atomic Parquet shard in
   ``OUT/embeddings/<name>/`` (:mod:`pyface.label.shards`), so a killed run resumes
   losing at most one unit, memory holds one unit of embeddings, and disk and the final
   reduction hold about identities x (Da + Db) floats -- never one row per image.
   Unreadable images are skipped and counted (``bad`` in the summary).
2. Duplicates (l.13-15): identity pairs whose mean embeddings have cosine >=
   ``threshold_a`` under net A *and* >= ``threshold_b`` under net B, via
   :func:`pyface.ops.cosine_duplicates` searching both spaces at once, over the paper's
   one list of all identities (every pair of datasets and each dataset against itself,
   ``duplicate_scope="all"``) or only across datasets (``"cross"``); chains through three
   or more datasets are found either way.
3. Merge (l.16): union-find (connected components, :mod:`scipy.sparse.csgraph`) over
   the (dataset, identity) nodes; new identity ids are contiguous from 0 in the order of
   each component's first node (datasets in the given order, identities ascending).
4. SemiIdentify (l.17-19): 300W-LP has no identities; every source 300W face gets one
   (all its augmented variants ``<name>_<k>`` and the ``_Flip`` mirrors share it, see
   :func:`semi_identify_key`); steps 1-3 are repeated between the merged identities
   (pooled sums: the mean over all their images) and these, and matches are merged in.
   Merged identities keep their ids unless a 300W-LP face joins two of them.
5. Thresholds: given, or calibrated per net as the best-accuracy cosine threshold on a
   verification pair set (insightface ``.bin``, e.g. LFW), as the paper does, through
   ``pyface.eval.best_threshold``.

Outputs in ``OUT``: ``manifest.parquet`` (the PLTD: the Algorithm-1 rows of
``landmarks`` with the new identities; images Algorithm 1 rejected are kept out unless
``keep_rejected``, which keeps them with NaN landmarks/pose for FR-only training;
300W-LP rows carry 300W-LP's own ground-truth landmarks and pose unless
``semi_labels="landmarks"``; image references are absolute paths),
``identity_map.csv`` (dataset, old_id, new_id, images), ``merges.csv`` (stage,
dataset/old id of both ends, both similarities), ``summary.json``.
"""
from pyface.label.identities.embed import (
                                           DEFAULT_CHUNK,
                                           DEFAULT_FACE_CROP_AREA,
                                           FRNet,
                                           IdentityEmbeddings,
                                           embed_identities,
                                           pair_scores,
)
from pyface.label.identities.job import IdentitiesConfig, field_name, run_identities
from pyface.label.identities.manifest import Resolver, check_sources, dataset_root, shard_files, write_pltd
from pyface.label.identities.merge import (
                                           DUPLICATE_SCOPES,
                                           SEMI_NAME,
                                           calibrate_threshold,
                                           find_duplicates,
                                           merge_identities,
                                           merge_quality,
                                           pair_precision_recall,
                                           pooled,
                                           scope_pairs,
                                           semi_identify_key,
                                           semi_identify_labels,
                                           union_find,
)

__all__ = ["DEFAULT_CHUNK", "DEFAULT_FACE_CROP_AREA", "DUPLICATE_SCOPES", "FRNet", "IdentitiesConfig",
           "IdentityEmbeddings", "Resolver", "SEMI_NAME", "calibrate_threshold", "check_sources", "dataset_root",
           "embed_identities", "field_name", "find_duplicates", "merge_identities", "merge_quality",
           "pair_precision_recall", "pair_scores", "pooled", "run_identities", "scope_pairs", "semi_identify_key",
           "semi_identify_labels", "shard_files", "union_find", "write_pltd"]
