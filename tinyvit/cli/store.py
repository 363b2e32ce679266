"""`tinyvit inspect STORE` and `tinyvit verify STORE`: look into / check a logit store.

Exit status (both commands): 0 = store opened and every epoch complete and valid,
1 = findings (incomplete epoch, missing/torn/corrupt records, invalid content, missing or
wrong-size data file), 2 = the store cannot be opened (manifest missing/garbled/unsupported).
Both use the one record contract of tinyvit/store/logit_store.py (a record is "missing" for
inspect exactly when verify has a finding for it), so they exit alike on the same store.
Output stays bounded for any number of epochs: at most MAX_PROBLEM_LINES problem lines
(then a count), OK epochs listed one per line only up to MAX_OK_LINES epochs.
"""
from __future__ import annotations

import argparse
import json
import sys

from ..store import EpochMissingError, LogitStore, StoreError

MAX_PROBLEM_LINES = 20
MAX_OK_LINES = 100

_EXIT_HELP = (
    "exit status: 0 = every epoch complete and valid; 1 = findings (missing/torn/corrupt "
    "records, invalid content, missing or wrong-size data files); 2 = the store cannot be "
    "opened (manifest missing, garbled, or of an unsupported format version)."
)


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return str(n)  # pragma: no cover


def _short(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def _progress(total: int, desc: str, enabled: bool):
    from ..data.index import progress_bar  # the one progress bar (data is below cli)

    return progress_bar(total, desc, enabled, unit="rec", unit_scale=True)


def _open(path: str, command: str):
    try:
        return LogitStore.open(path, mode="r")
    except StoreError as e:  # the one-line form of tinyvit.cli.main, naming the error type
        print(f"tinyvit {command}: error: {type(e).__name__}: {_short(' '.join(str(e).split()), 2000)}",
              file=sys.stderr)
        return None


class _Report:
    """Bounded per-epoch output: the first MAX_PROBLEM_LINES problems, then only counts."""

    def __init__(self, n_epochs: int):
        self.show_ok = n_epochs <= MAX_OK_LINES
        self.problems = 0
        self.ok = 0

    def ok_line(self, line: str):
        self.ok += 1
        if self.show_ok:
            print(line)

    def problem(self, line: str):
        self.problems += 1
        if self.problems <= MAX_PROBLEM_LINES:
            print(line)

    def problems_bulk(self, items, line) -> int:
        """A run of findings of one kind (absent epoch files): ``line(item)`` printed for the
        first ones still shown, the rest only counted. Returns how many."""
        n = len(items)
        for item in items[:max(0, MAX_PROBLEM_LINES - self.problems)]:
            print(line(item))
        self.problems += n
        return n

    def close(self):
        if self.problems > MAX_PROBLEM_LINES:
            print(f"... {self.problems - MAX_PROBLEM_LINES} more epochs with findings not shown "
                  f"({self.problems} in all)")
        if not self.show_ok and self.ok:
            print(f"{self.ok} epochs complete and valid (not listed one by one)")


def _absent_epochs(store: LogitStore):
    """Epochs whose data file is absent, from one listing: reported without trying to open
    them (a store declaring 2^20 epochs must not cost 2^20 failed opens). None when the
    directory cannot be listed (each epoch's own open then says why)."""
    try:
        return store.absent_epochs()
    except StoreError:
        return None


def _check_present(store: LogitStore, e: int, absent) -> None:
    if absent is not None and e in absent:
        raise EpochMissingError(_absent_error(store, e))


def _absent_error(store: LogitStore, e: int) -> str:
    return f"{store.epoch_path(e)} (epoch {e}): data file does not exist"


def _absent_line(store: LogitStore, e: int) -> str:
    return f"EpochMissingError: {_absent_error(store, e)}"


def _runs(epochs, absent):
    """``epochs`` in order as (is_absent, item): runs of consecutive epochs whose data file is
    absent as ranges (reported in bulk), the others one by one. A manifest declaring 2^20
    epochs (a 1 KB input) must not cost 2^20 failed opens and error lines (seconds;
    benchmarks/fuzz_store.py found it over its 2 s per-case bound)."""
    start = prev = None
    for e in epochs:
        if absent is not None and e in absent:
            if start is not None and e == prev + 1:
                prev = e
                continue
            if start is not None:
                yield True, range(start, prev + 1)
            start = prev = e
            continue
        if start is not None:
            yield True, range(start, prev + 1)
            start = None
        yield False, e
    if start is not None:
        yield True, range(start, prev + 1)


def _scan_missing(store: LogitStore, epoch: int, chunk: int, progress: bool, absent=None):
    """Missing count of one epoch and its first missing sample, chunked for the progress bar."""
    _check_present(store, epoch, absent)
    n = store.num_samples
    bar = _progress(n, f"epoch {epoch}", progress)
    missing = 0
    first = None
    try:
        for a in range(0, n, chunk):
            m = store.missing(epoch, a, min(chunk, n - a))
            if len(m) and first is None:
                first = int(m[0])
            missing += len(m)
            bar.update(min(chunk, n - a))
    finally:
        bar.close()
    return missing, first


def cmd_inspect(args) -> int:
    store = _open(args.store, "inspect")
    if store is None:
        return 2
    m = store.manifest
    findings = 0
    print(f"store        {store.path}")
    print(f"format       {m['format']} v{m['format_version']}  (checksum {m['checksum']}, "
          f"store_id {m['store_id']})")
    print(f"samples N    {m['num_samples']}")
    print(f"classes C    {m['num_classes']}  (index dtype {m['index_dtype']})")
    print(f"top-K        {m['topk']}  (value encoding {m['value_encoding']})")
    print(f"record size  {m['record_size']} bytes")
    print(f"epochs       {m['epochs']}")
    print(f"aug fp       {_short(repr(m.get('aug_fingerprint')))}")
    print(f"teacher      {_short(json.dumps(m.get('teacher')))}")
    print(f"dataset fp   {_short(repr(m.get('dataset_fingerprint')))}")
    if m.get("meta"):
        print(f"meta         {_short(json.dumps(m['meta']))}")
    try:
        on_disk = _human(store.disk_usage())
    except StoreError as ex:
        on_disk = f"? ({type(ex).__name__}: {ex})"
        findings += 1
    print(f"size         {_human(store.nbytes)} logical, {on_disk} on disk")
    print("epoch  complete        missing  state")
    sample_epoch = None
    epochs = args.epoch if args.epoch else range(store.epochs)
    absent = _absent_epochs(store)
    report = _Report(len(epochs))
    for is_absent, e in _runs(epochs, absent):
        if is_absent:  # a run of absent files, one finding each, in bulk (2^20 may be declared)
            findings += report.problems_bulk(
                e, lambda e: f"{e:5d}  {'-':>8}  {'-':>13}  {_absent_line(store, e)}")
            continue
        try:
            miss, first = _scan_missing(store, e, args.chunk, not args.no_progress, absent)
        except StoreError as ex:
            report.problem(f"{e:5d}  {'-':>8}  {'-':>13}  {type(ex).__name__}: {ex}")
            findings += 1
            continue
        done = store.num_samples - miss
        pct = 100.0 * done / store.num_samples
        line = f"{e:5d}  {pct:7.2f}%  {miss:13d}  "
        if miss == 0:
            report.ok_line(line + "complete")
        else:
            report.problem(line + f"incomplete (first missing or invalid sample {first})")
            findings += 1
        if sample_epoch is None and done > 0:
            sample_epoch = e
    report.close()
    if args.records > 0 and sample_epoch is not None:
        findings += _show_records(store, sample_epoch, args.records)
    store.close()
    return 1 if findings else 0


def _show_records(store: LogitStore, e: int, count: int) -> int:
    """Print the first ``count`` valid records of epoch e; a read failure (the store changed
    since the scan) is printed as a finding. Returns the number of findings."""
    print(f"records of epoch {e} (first {count} verified; top-5 shown):")
    shown, a = 0, 0
    n = store.num_samples
    try:
        while shown < count and a < n:
            b = min(n, a + 4096)
            missing = set(store.missing(e, a, b - a).tolist())
            for s in range(a, b):
                if s in missing:
                    continue
                seeds, idx, probs = store.read(e, [s])
                top = ", ".join(f"{int(i)}:{float(p):.4g}" for i, p in
                                zip(idx[0, :5], probs[0, :5]))
                print(f"  sample {s}: seed {int(seeds[0])}  sum(p) {float(probs[0].sum()):.5f}"
                      f"  [{top}{', ...' if store.topk > 5 else ''}]")
                shown += 1
                if shown >= count:
                    break
            a = b
    except StoreError as ex:
        print(f"  finding: {type(ex).__name__}: {ex}")
        return 1
    return 0


def cmd_verify(args) -> int:
    if getattr(args, "attest", False) and not getattr(args, "data", None):
        from . import CLIError

        raise CLIError("--attest needs --data SPEC (the dataset whose replay it attests)")
    store = _open(args.store, "verify")
    if store is None:
        return 2
    epochs = args.epoch if args.epoch else range(store.epochs)
    n = store.num_samples
    total_bad = 0
    absent = _absent_epochs(store)
    report = _Report(len(epochs))
    keys = ("missing", "bad_checksum", "bad_index", "duplicate_index", "prob_range", "prob_sum",
            "bad_encoding")
    for is_absent, e in _runs(epochs, absent):
        if is_absent:  # a run of absent files, one finding each, in bulk (2^20 may be declared)
            total_bad += report.problems_bulk(e, lambda e: f"epoch {e}: {_absent_line(store, e)}")
            continue
        counts = dict.fromkeys(keys, 0)
        counts["ok"] = 0
        first = None
        bar = _progress(n, f"verify epoch {e}", not args.no_progress)
        try:
            for a in range(0, n, args.chunk):
                c = store.audit(e, a, min(args.chunk, n - a))
                for k in keys + ("ok",):
                    counts[k] += c[k]
                if first is None and c["first_bad_sample"] >= 0:
                    first = (c["first_bad_sample"], c["first_bad_detail"])
                bar.update(min(args.chunk, n - a))
        except StoreError as ex:  # e.g. the file shrank or an I/O error during the audit
            report.problem(f"epoch {e}: {type(ex).__name__}: {ex}")
            total_bad += 1
            continue
        finally:
            bar.close()
        bad = sum(counts[k] for k in keys)
        total_bad += bad
        if bad == 0:
            report.ok_line(f"epoch {e}: OK ({counts['ok']} records verified)")
        else:
            detail = ", ".join(f"{k} {counts[k]}" for k in keys if counts[k])
            report.problem(f"epoch {e}: {bad} of {n} records with findings: {detail}; first: "
                           f"sample {first[0]} ({first[1]}) in {store.epoch_path(e)}")
    report.close()
    if getattr(args, "data", None):  # replay attestation: this machine shows the teacher's pixels
        total_bad += verify_replay(store, args.data, epochs, attest=getattr(args, "attest", False))
    store.close()
    if total_bad:
        print(f"FAILED: {total_bad} findings")
        return 1
    print("all records verified")
    return 0


def verify_replay(store, data: str, epochs, attest: bool = False, log=print) -> int:
    """``tinyvit verify --data SPEC [--attest]``: replay the attested samples of ``epochs``
    with the store's own config (every one of them must be attested, docs/store.md);
    ``attest``: first attest the complete epochs that have no entry, from this machine's
    replay. Prints one line; returns the number of findings (0 or 1)."""
    import warnings

    from ..data.attest import attest_existing, check_replay, load_attestation
    from ..data.datasets import open_dataset
    from ..data.store_config import store_aug_config
    from ..store import check_compatible

    try:
        dataset = open_dataset(data)
        cfg = store_aug_config(store)  # ManifestError: missing or garbled
        check_compatible(store, dataset=dataset, aug_config=cfg)
        if attest:
            added = attest_existing(store, dataset, cfg, epochs)
            log(f"replay: attested epochs {added or 'none (all were attested)'} from this "
                "machine's replay (an attestation vouches only for what this machine replays)")
        elif load_attestation(store) is None:
            log("replay: NOT CHECKED: the store has no attest.json (saved by an older tinyvit, "
                "or removed); attest it with --attest on the machine that saved it")
            return 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # said above, as a finding
            n = check_replay(store, dataset, cfg, epochs=epochs)
    except (StoreError, ValueError, KeyError, TypeError) as ex:
        log(f"replay: {type(ex).__name__}: {' '.join(str(ex).split())}")
        return 1
    log(f"replay: OK ({n} attested epochs replay the teacher's pixels on this machine)")
    return 0


def add_store_parsers(subparsers) -> None:
    """Register `inspect` and `verify` on an argparse subparsers object."""
    p = subparsers.add_parser(
        "inspect",
        help="show a logit store's manifest, size, per-epoch completeness and a few records",
        description="Show the manifest of a logit store (N, C, K, encodings, fingerprints), its "
                    "logical and on-disk size, how complete every epoch is (a record counts "
                    "when its checksum verifies: this reads every record of the epochs shown, "
                    "limit them with --epoch), and a few decoded records.",
        epilog=_EXIT_HELP,
    )
    p.add_argument("store", help="store directory (holding manifest.json)")
    p.add_argument("--records", type=int, default=3, help="decoded records to show (default 3)")
    p.add_argument("--epoch", type=int, action="append", help="only this epoch (repeatable)")
    p.add_argument("--chunk", type=int, default=1 << 16, help=argparse.SUPPRESS)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_inspect)

    v = subparsers.add_parser(
        "verify",
        help="check every record of a logit store (checksums and content)",
        description="Check every record of every epoch (or of --epoch E ...): the checksum "
                    "verifies (else: missing = never written, or torn/corrupt), class indices "
                    "are < C and distinct, probabilities lie in [0, 1] and sum to at most "
                    "1 + 2e-3 per record.",
        epilog=_EXIT_HELP,
    )
    v.add_argument("store", help="store directory (holding manifest.json)")
    v.add_argument("--epoch", type=int, action="append", help="only this epoch (repeatable)")
    v.add_argument("--data", help="also replay the attested samples from this dataset (spec as "
                   "for save-logits) and check they match the teacher's pixels; every epoch "
                   "checked must be attested")
    v.add_argument("--attest", action="store_true",
                   help="with --data: first attest the complete epochs that have no attestation "
                   "(a store saved before attestation existed, or an entry lost) from this "
                   "machine's replay; only vouches for what this machine replays")
    v.add_argument("--chunk", type=int, default=1 << 16, help=argparse.SUPPRESS)
    v.add_argument("--no-progress", action="store_true", help="no progress bars")
    v.set_defaults(func=cmd_verify)
