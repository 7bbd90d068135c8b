"""Group-level flags turned into per-pair flags with a join by key, salted for hot groups.

Corpus filters decide per *group* (an image, an alt-text) and must flag every *pair* of a flagged
group. A side input of flagged groups would grow with the data (up to pairs/11 alt-texts shared by
more than 10 images), so this is a CoGroupByKey on the group. One group can be huge (the alt-text
"image", a placeholder GIF found on millions of pages): the members of the few groups larger than
`hot_group_threshold` are spread over `salt_buckets` sub-keys and the flag is replicated to each,
so no single worker receives a whole hot group. The set of hot groups is a side input bounded by
pairs / hot_group_threshold (1.8B / 100k = 18k ids), independent of the number of groups.
"""
import zlib

import apache_beam as beam

HOT_GROUP_THRESHOLD = 100_000  # members; groups above it are salted
SALT_BUCKETS = 64


def salt_for(member_key: str, salt_buckets: int) -> int:
    """Stable (process-independent) salt of a member: crc32 of its key modulo the bucket count."""
    return zlib.crc32(member_key.encode("utf-8", "surrogatepass")) % salt_buckets


def salted_member(group_and_key, hot_groups, salt_buckets):
    group, key = group_and_key
    salt = salt_for(key, salt_buckets) if group in hot_groups else 0
    return (group, salt), key


def salted_flags(group, hot_groups, salt_buckets):
    salts = range(salt_buckets) if group in hot_groups else (0,)
    return [((group, salt), True) for salt in salts]


def flags_of_members(joined, reason):
    _, grouped = joined
    if grouped["flag"]:
        for key in grouped["members"]:
            yield key, reason


class FlagMembersOfFlaggedGroups(beam.PTransform):
    """{"members": PCollection[(group, key)], "flagged_groups": PCollection[group]} ->
    PCollection[(key, reason)] for every member of a flagged group (one per member).

    Optional "member_counts": PCollection[(group, number of members)] when the caller has it
    already (saves one combine); otherwise it is counted here.
    """

    def __init__(self, reason, hot_group_threshold=HOT_GROUP_THRESHOLD, salt_buckets=SALT_BUCKETS,
                 hot_key_fanout=16):
        super().__init__()
        self._reason = reason
        self._hot_threshold = hot_group_threshold
        self._salt_buckets = salt_buckets
        self._fanout = hot_key_fanout

    def expand(self, pcolls):
        members, flagged_groups = pcolls["members"], pcolls["flagged_groups"]
        member_counts = pcolls.get("member_counts")
        if member_counts is None:
            member_counts = (
                members
                | "OnePerMember" >> beam.Map(lambda group_key: (group_key[0], 1))
                | "CountMembers" >> beam.CombinePerKey(sum).with_hot_key_fanout(self._fanout))
        hot_groups = beam.pvalue.AsSingleton(
            member_counts
            | "KeepHot" >> beam.Filter(lambda group_count, t: group_count[1] > t, self._hot_threshold)
            | "HotIds" >> beam.Keys()
            | "HotSet" >> beam.combiners.ToSet()
            | "Freeze" >> beam.Map(frozenset))
        salted = members | "SaltMembers" >> beam.Map(salted_member, hot_groups, self._salt_buckets)
        flags = flagged_groups | "SaltFlags" >> beam.FlatMap(salted_flags, hot_groups, self._salt_buckets)
        return (
            {"members": salted, "flag": flags}
            | "JoinByGroup" >> beam.CoGroupByKey()
            | "FlagMembers" >> beam.FlatMap(flags_of_members, self._reason))
