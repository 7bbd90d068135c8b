"""Bad input of the trainer's input pipeline (trainer/input_pipeline.py): a corrupt TFRecord, a
record that is not an Example, an image that does not decode. Each is named by file and byte
offset, which every record carries from the reader on.

- Corrupt data (`read_file`): each file has its own TFRecordDataset behind ignore_errors().
  TensorFlow's reader gives up on a file at its first bad record (past a bad checksum the length
  framing cannot be trusted), so that file's records stop before its size (tf.io.gfile.stat when
  the pipeline is built, `file_sizes`): records ending at offset N < size mean a corrupt or
  truncated record at N (TensorFlow's own message names its payload, 12 bytes further), and a
  CORRUPT marker takes the place of the rest of the file, which is not read.
- Parse and decode (`decode_checked`) are one plain parallel map, in order (deterministic), behind
  ignore_errors(), so a good record pays no "try". Each record gets a sequence number (enumerate);
  the map first puts its "file@offset" and what it is if it fails into two hash tables keyed by
  that number (CORRUPT for a marker, whose map fails on purpose; MALFORMED until its parse
  succeeds, UNDECODABLE from then on: the map updates the state between the two). After it, a
  scan compares each delivered number with the previous one: the numbers in between are the
  records that failed, looked up, recorded and removed from the tables (so they hold only the
  records in flight). After the last record of a finite pass (evaluation; training never ends) a
  valid one-pixel Example makes failures at the very end a gap too; it is never delivered.
  Cost: docs/BENCHMARKS.md "Bad-input checks in the input pipeline".

By default a bad record fails the input with a tf.debugging.Assert whose message names the file
and offset (after the ignore_errors, so that it is not ignored), re-raised as BadInputError by
`naming_bad_input` (the training loop runs inside it). With `skip_corrupt_records`
(align-train --skip_corrupt_records) bad records are dropped and recorded in a SkippedInput: per
input pipeline, hash tables on its device keyed by file@offset, so a record is counted once
however often it is met again (epochs). Counts are per process (a multi-worker chief reports its
own pipelines). A read error that is not corruption (a file deleted mid-run) looks like, and is
handled as, a corrupt file.
"""
import contextlib
import logging
import re
import struct
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, List, Optional, Tuple

import tensorflow as tf

from schemas import example_schema
from schemas.example_wire import serialize_example

RECORD, END, CORRUPT, MALFORMED, UNDECODABLE = 0, 1, 2, 3, 4  # "kind" of a located record
_READ_BUFFER_BYTES = 8 << 20  # per-shard read-ahead; large sequential reads suit GCS
_FRAMING_BYTES = 16  # TFRecord: uint64 length, uint32 CRC of it, the data, uint32 CRC of the data
_WHAT = ["", "", "corrupt or truncated TFRecord data in ",
         "a record that is not a tf.train.Example of the schema in ",
         "a record whose image/encoded does not decode in "]
_BAD_INPUT = "bad input: "  # starts the assertion messages that naming_bad_input recognises
_MAX_NAMED = 100  # bad records named one by one in warnings; past that, only counted

Tables = Optional[Dict[str, tf.lookup.experimental.MutableHashTable]]


def _one_pixel_bmp() -> bytes:  # 14-byte file header, 40-byte info header, one padded 24-bit row
    row = b"\0\0\0\0"
    return (b"BM" + struct.pack("<IHHI", 14 + 40 + len(row), 0, 0, 54)
            + struct.pack("<IiiHHIIiiII", 40, 1, 1, 1, 24, 0, len(row), 2835, 2835, 0, 0) + row)


# After the last record of a finite pass (offset -1): it parses and decodes, so that a failure
# among the last records is a gap before it; never delivered.
_END_EXAMPLE = serialize_example(image_jpeg=_one_pixel_bmp(), height=1, width=1, text="",
                                 raw_text="", key="")


class BadInputError(RuntimeError):
    """A corrupt TFRecord, malformed Example or undecodable image; the message names the file."""


@contextlib.contextmanager
def naming_bad_input():
    """Re-raises the input's bad-record assertion (a tf.errors.InvalidArgumentError, whichever
    strategy or tf.function it came through) as BadInputError with just its message."""
    try:
        yield
    except tf.errors.OpError as error:
        found = re.search(re.escape(_BAD_INPUT) + r"(.*?)\]?\s*(?:\n|\[\[|$)", str(error), re.S)
        if not found:
            raise
        raise BadInputError(found.group(1)) from error


class SkippedInput:
    """The bad records that input pipelines built with skip_corrupt_records dropped (module doc)."""

    NAMES = ("corrupt_records", "undecodable_images")

    def __init__(self):
        self._tables: List[Dict[str, tf.lookup.experimental.MutableHashTable]] = []
        self._named, self._capped = set(), False

    def new_tables(self) -> Dict[str, tf.lookup.experimental.MutableHashTable]:
        """Tables of one input pipeline; made where it is built, so on its device. Key file@offset,
        value: the bytes of the file left unread (corrupt data), else -1."""
        tables = {name: tf.lookup.experimental.MutableHashTable(tf.string, tf.int64, -2)
                  for name in self.NAMES}
        self._tables.append(tables)
        return tables

    def counts(self) -> Dict[str, int]:
        """{"skipped_corrupt_records": n, "skipped_undecodable_images": m}: distinct records."""
        return {f"skipped_{name}": sum(int(t[name].size()) for t in self._tables)
                for name in self.NAMES}

    def entries(self) -> List[Tuple[str, str, int, int]]:
        """Sorted (name, file, offset, unread bytes or -1) of every skipped record."""
        out = []
        for tables in self._tables:
            for name, table in tables.items():
                keys, values = table.export()
                for key, value in zip(keys.numpy(), values.numpy()):
                    file, offset = key.decode("utf-8", "replace").rsplit("@", 1)
                    out.append((name, file, int(offset), int(value)))
        return sorted(out)

    def warn_new(self) -> Dict[str, int]:
        """logging.warning naming each skipped record not named yet (the first _MAX_NAMED), then
        the counts."""
        counts = self.counts()
        total = sum(counts.values())
        if total > _MAX_NAMED and not self._capped:
            self._capped = True
            logging.warning("%d bad input records skipped: further ones are counted, not named",
                            total)
        if self._capped or total <= len(self._named):
            return counts
        for name, file, offset, value in self.entries():
            if (name, file, offset) in self._named:
                continue
            self._named.add((name, file, offset))
            if name == "undecodable_images":
                why = "its image/encoded does not decode"
            elif value >= 0:
                why = (f"corrupt or truncated TFRecord data; the rest of the file ({value} bytes) "
                       "is not read")
            else:
                why = "not a tf.train.Example of the schema"
            logging.warning("skipped the record at byte offset %d of %s: %s", offset, file, why)
        return counts


def file_sizes(files: List[str]) -> List[int]:
    with ThreadPoolExecutor(16) as pool:  # a gs:// stat is a round trip
        return list(pool.map(lambda f: tf.io.gfile.stat(f).length, files))


def read_file(file: tf.Tensor, size: tf.Tensor, log_errors: bool) -> tf.data.Dataset:
    """{"file", "offset", "kind", "record", "unread"} of one file's records (kind RECORD), then a
    CORRUPT marker where they stop if that is before the file's end (module doc). log_errors:
    TensorFlow's own message (failing runs; when skipping it would repeat every epoch)."""
    records = tf.data.TFRecordDataset(file, buffer_size=_READ_BUFFER_BYTES).ignore_errors(
        log_warning=log_errors)
    records = tf.data.Dataset.zip((records, tf.data.Dataset.from_tensors(False).repeat()))
    records = records.concatenate(tf.data.Dataset.from_tensors((tf.constant(""), True)))

    def locate(offset, item):
        record, is_end = item
        kind = tf.where(is_end, tf.where(offset < size, CORRUPT, END), RECORD)
        located = {"file": file, "offset": offset, "kind": kind, "record": record,
                   "unread": size - offset}
        return offset + _FRAMING_BYTES + tf.cast(tf.strings.length(record), tf.int64), located
    return records.scan(tf.constant(0, tf.int64), locate).filter(lambda e: e["kind"] != END)


def decode_checked(records: tf.data.Dataset, decode: Callable[[Dict], Dict], tables: Tables,
                   endless: bool) -> tf.data.Dataset:
    """`read_file`'s located records and markers -> decode(features) of each good record, in order.
    A bad one (a CORRUPT marker, a record that does not parse or whose decode fails) is dropped and
    recorded in `tables`, or fails the input naming it (tables None): module doc. `endless`: the
    records never end (training), so no end marker is needed. One iterator at a time: each pass
    numbers its records from 0 in the same tables."""
    locations = tf.lookup.experimental.MutableHashTable(tf.int64, tf.string, "")
    states = tf.lookup.experimental.MutableHashTable(  # seq -> [kind if it fails now, unread]
        tf.int64, tf.int64, tf.constant([MALFORMED, -1], tf.int64))

    def attempt(seq, e):  # fails for a marker, a malformed record, an undecodable image
        key = tf.strings.join([e["file"], "@", tf.strings.as_string(e["offset"])])
        kind = tf.where(e["kind"] == CORRUPT, CORRUPT, MALFORMED)
        state = tf.stack([tf.cast(kind, tf.int64), e["unread"]])
        noted = [locations.insert(seq[None], key[None]), states.insert(seq[None], state[None])]
        with tf.control_dependencies(noted):  # before anything can fail
            is_record = tf.debugging.Assert(
                e["kind"] == RECORD, ["corrupt or truncated TFRecord data (named next)"])
        with tf.control_dependencies([is_record]):
            features = example_schema.parse_example(e["record"])
        with tf.control_dependencies(list(features.values())):  # parsed: an image failure now
            parsed = states.insert(seq[None], tf.constant([[UNDECODABLE, -1]], tf.int64))
        with tf.control_dependencies([parsed]):
            features = {name: tf.identity(value) for name, value in features.items()}
        return {"seq": seq, "end": e["offset"] < 0, "value": decode(features)}

    def check(last, e):  # the records numbered between the last delivered one and e failed
        seq = e["seq"]
        done = tf.cond(seq > last + 1,
                       lambda: _record_failed(tf.range(last + 1, seq), locations, states, tables),
                       lambda: tf.constant(True))
        with tf.control_dependencies([done]):
            done = [table.remove(tf.range(last + 1, seq + 1)) for table in (locations, states)]
        with tf.control_dependencies(done):
            return tf.identity(seq), (e["value"] if endless else e)

    def delivered(e):
        return tf.logical_not(e["end"])

    def value(e):
        return e["value"]
    if not endless:  # a last element that decodes, so that failures at the end are a gap too
        end = {name: tf.zeros(spec.shape, spec.dtype)
               for name, spec in records.element_spec.items()}
        end.update(record=tf.constant(_END_EXAMPLE), offset=tf.constant(-1, tf.int64))
        records = records.concatenate(tf.data.Dataset.from_tensors(end))
    ds = records.enumerate().map(attempt, num_parallel_calls=tf.data.AUTOTUNE,
                                 deterministic=True)  # in order: a gap in "seq" is a failure
    ds = ds.ignore_errors(log_warning=tables is None).scan(tf.constant(-1, tf.int64), check)
    return ds if endless else ds.filter(delivered).map(value)


def _record_failed(failed: tf.Tensor, locations, states, tables: Tables) -> tf.Tensor:
    """Records the failed sequence numbers in `tables`, or (tables None) fails naming the first."""
    keys = tf.ensure_shape(locations.lookup(failed), [None])
    state = tf.ensure_shape(states.lookup(failed), [None, 2])
    kinds, unread = state[:, 0], state[:, 1]
    if tables is None:
        where = tf.strings.regex_replace(keys[0], "@(-?[0-9]+)$", " at byte offset \\1")
        done = [tf.debugging.Assert(False, [_message(tf.gather(_WHAT, kinds[0]), where)],
                                    summarize=1)]
    else:
        image = kinds == UNDECODABLE
        done = [tables["undecodable_images"].insert(
                    tf.boolean_mask(keys, image),
                    tf.fill([tf.reduce_sum(tf.cast(image, tf.int32))], tf.constant(-1, tf.int64))),
                tables["corrupt_records"].insert(  # unread: the rest of a corrupt file, else -1
                    tf.boolean_mask(keys, ~image),
                    tf.boolean_mask(tf.where(kinds == CORRUPT, unread, -1), ~image))]
    with tf.control_dependencies(done):
        return tf.constant(True)


def _message(what: tf.Tensor, where: tf.Tensor) -> tf.Tensor:
    return tf.strings.join([_BAD_INPUT, what, where,
                            " (align-train --skip_corrupt_records skips and counts such records)"])
