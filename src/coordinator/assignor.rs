//! Server-side assignors of the consumer group protocol (KIP-848): they turn the members'
//! subscriptions and the topics' partition counts into a target assignment.
//!
//! - `uniform`: spreads every subscribed partition as evenly as possible over the members
//!   subscribed to its topic, keeping partitions where they were in the previous target (sticky)
//!   so a rebalance moves as few partitions as it can.
//! - `range`: per topic, the subscribed members in member-id order get contiguous ranges of
//!   partitions, the first `partitions % members` one more (the classic range assignor).

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

/// Partitions by topic id.
pub type TopicPartitions = BTreeMap<Uuid, BTreeSet<i32>>;

/// The names of the assignors, the default first.
pub const ASSIGNORS: &[&str] = &["uniform", "range"];

/// What an assignor needs to know about a member.
#[derive(Debug, Clone)]
pub struct AssignorMember<'a> {
    /// Member id.
    pub id: &'a str,
    /// Subscribed topic ids (topics that exist).
    pub topics: BTreeSet<Uuid>,
    /// The member's previous target assignment.
    pub previous: &'a TopicPartitions,
}

/// Runs the named assignor; `topics` maps every subscribed topic to its partition count.
/// Returns each member's target; `None` for an unknown assignor.
pub fn assign(
    name: &str,
    members: &[AssignorMember<'_>],
    topics: &BTreeMap<Uuid, i32>,
) -> Option<BTreeMap<String, TopicPartitions>> {
    match name {
        "uniform" => Some(uniform(members, topics)),
        "range" => Some(range(members, topics)),
        _ => None,
    }
}

fn empty_targets(members: &[AssignorMember<'_>]) -> BTreeMap<String, TopicPartitions> {
    members
        .iter()
        .map(|m| (m.id.to_string(), TopicPartitions::new()))
        .collect()
}

fn range(
    members: &[AssignorMember<'_>],
    topics: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, TopicPartitions> {
    let mut out = empty_targets(members);
    for (topic, &count) in topics {
        let mut subscribers: Vec<&str> = members
            .iter()
            .filter(|m| m.topics.contains(topic))
            .map(|m| m.id)
            .collect();
        subscribers.sort_unstable();
        if subscribers.is_empty() || count <= 0 {
            continue;
        }
        let n = subscribers.len() as i32;
        let (each, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, id) in subscribers.iter().enumerate() {
            let take = each + i32::from((i as i32) < extra);
            let parts: BTreeSet<i32> = (next..next + take).collect();
            next += take;
            if !parts.is_empty() {
                out.entry(id.to_string()).or_default().insert(*topic, parts);
            }
        }
    }
    out
}

fn uniform(
    members: &[AssignorMember<'_>],
    topics: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, TopicPartitions> {
    // Every partition's owner, starting from the previous target where still valid.
    let mut owner: BTreeMap<(Uuid, i32), usize> = BTreeMap::new();
    let mut load = vec![0usize; members.len()];
    for (i, m) in members.iter().enumerate() {
        for (topic, parts) in m.previous {
            let Some(&count) = topics.get(topic) else {
                continue;
            };
            if !m.topics.contains(topic) {
                continue;
            }
            for &p in parts {
                if p < count && !owner.contains_key(&(*topic, p)) {
                    owner.insert((*topic, p), i);
                    load[i] += 1;
                }
            }
        }
    }
    // Unowned partitions go to the least loaded eligible member (ties: member id order).
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_by_key(|&i| members[i].id);
    for (topic, &count) in topics {
        for p in 0..count.max(0) {
            if owner.contains_key(&(*topic, p)) {
                continue;
            }
            let best = order
                .iter()
                .copied()
                .filter(|&i| members[i].topics.contains(topic))
                .min_by_key(|&i| load[i]);
            if let Some(i) = best {
                owner.insert((*topic, p), i);
                load[i] += 1;
            }
        }
    }
    // Balance: move a partition from the most to a less loaded eligible member while that
    // narrows the spread by more than one.
    let total: usize = load.iter().sum();
    for _ in 0..=total {
        let mut moved = false;
        let mut by_load = order.clone();
        by_load.sort_by_key(|&i| std::cmp::Reverse(load[i]));
        'outer: for &from in &by_load {
            // The newest partitions of `from` move first (keeps older placements sticky).
            let candidates: Vec<(Uuid, i32)> = owner
                .iter()
                .filter(|(_, &o)| o == from)
                .map(|(k, _)| *k)
                .rev()
                .collect();
            for (topic, p) in candidates {
                let to = order
                    .iter()
                    .copied()
                    .filter(|&i| members[i].topics.contains(&topic) && load[i] + 1 < load[from])
                    .min_by_key(|&i| load[i]);
                if let Some(to) = to {
                    owner.insert((topic, p), to);
                    load[from] -= 1;
                    load[to] += 1;
                    moved = true;
                    break 'outer;
                }
            }
        }
        if !moved {
            break;
        }
    }
    let mut out = empty_targets(members);
    for ((topic, p), i) in owner {
        out.entry(members[i].id.to_string())
            .or_default()
            .entry(topic)
            .or_default()
            .insert(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(t: &TopicPartitions) -> usize {
        t.values().map(BTreeSet::len).sum()
    }

    fn member<'a>(
        id: &'a str,
        topics: &[Uuid],
        previous: &'a TopicPartitions,
    ) -> AssignorMember<'a> {
        AssignorMember {
            id,
            topics: topics.iter().copied().collect(),
            previous,
        }
    }

    #[test]
    fn uniform_is_balanced_complete_and_sticky() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let topics = BTreeMap::from([(a, 4), (b, 3)]);
        let none = TopicPartitions::new();
        let one = assign("uniform", &[member("m1", &[a, b], &none)], &topics).unwrap();
        assert_eq!(count(&one["m1"]), 7);
        let prev = one["m1"].clone();
        let two = assign(
            "uniform",
            &[member("m1", &[a, b], &prev), member("m2", &[a, b], &none)],
            &topics,
        )
        .unwrap();
        let (c1, c2) = (count(&two["m1"]), count(&two["m2"]));
        assert_eq!(c1 + c2, 7);
        assert!(c1.abs_diff(c2) <= 1, "{c1} vs {c2}");
        // m1 kept what it had except what moved to m2.
        for (t, ps) in &two["m1"] {
            assert!(ps.is_subset(&prev[t]));
        }
        // Disjoint.
        for (t, ps) in &two["m2"] {
            assert!(two["m1"].get(t).map_or(true, |q| q.is_disjoint(ps)));
        }
    }

    #[test]
    fn uniform_respects_subscriptions() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let topics = BTreeMap::from([(a, 2), (b, 2)]);
        let none = TopicPartitions::new();
        let r = assign(
            "uniform",
            &[member("m1", &[a], &none), member("m2", &[a, b], &none)],
            &topics,
        )
        .unwrap();
        assert!(!r["m1"].contains_key(&b));
        assert_eq!(r["m2"][&b].len(), 2);
        assert_eq!(count(&r["m1"]) + count(&r["m2"]), 4);
    }

    #[test]
    fn range_gives_contiguous_ranges() {
        let a = Uuid::new_v4();
        let topics = BTreeMap::from([(a, 7)]);
        let none = TopicPartitions::new();
        let r = assign(
            "range",
            &[
                member("m2", &[a], &none),
                member("m1", &[a], &none),
                member("m3", &[a], &none),
            ],
            &topics,
        )
        .unwrap();
        assert_eq!(r["m1"][&a], BTreeSet::from([0, 1, 2]));
        assert_eq!(r["m2"][&a], BTreeSet::from([3, 4]));
        assert_eq!(r["m3"][&a], BTreeSet::from([5, 6]));
        assert!(assign("sticky", &[], &topics).is_none());
    }
}
