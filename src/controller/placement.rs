//! Replica placement: which brokers hold a new partition's replicas. Brokers are ordered so that
//! neighbours sit in different racks where racks differ, and partition `p` takes `rf`
//! consecutive brokers from position `start + p`, so leaders (the first replica) spread over
//! brokers and replicas over racks.

use std::collections::BTreeMap;

use crate::metadata::MetadataImage;

/// Why a placement is not possible.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlacementError {
    /// More replicas asked for than live brokers exist (or a non-positive factor).
    #[error("replication factor {rf} is larger than the {live} available brokers")]
    ReplicationFactor {
        /// Asked for.
        rf: i16,
        /// Live brokers.
        live: usize,
    },
    /// An explicit assignment names an unknown broker, repeats one, or is empty.
    #[error("invalid replica assignment: {0}")]
    Assignment(String),
}

/// Live brokers interleaved by rack: r1b1, r2b2, r3b3, r1b4, ...
fn rack_interleaved(image: &MetadataImage) -> Vec<i32> {
    let mut by_rack: BTreeMap<Option<&str>, Vec<i32>> = BTreeMap::new();
    for b in image.live_brokers() {
        by_rack.entry(b.rack.as_deref()).or_default().push(b.id);
    }
    let mut lists: Vec<std::collections::VecDeque<i32>> =
        by_rack.into_values().map(Into::into).collect();
    let mut out = Vec::new();
    while lists.iter().any(|l| !l.is_empty()) {
        for l in lists.iter_mut() {
            if let Some(b) = l.pop_front() {
                out.push(b);
            }
        }
    }
    out
}

/// Replicas for `partitions` new partitions of `rf` replicas each.
pub fn assign(
    image: &MetadataImage,
    partitions: i32,
    rf: i16,
    start: usize,
) -> Result<Vec<Vec<i32>>, PlacementError> {
    let brokers = rack_interleaved(image);
    if rf < 1 || rf as usize > brokers.len() {
        return Err(PlacementError::ReplicationFactor {
            rf,
            live: brokers.len(),
        });
    }
    let n = brokers.len();
    Ok((0..partitions.max(0) as usize)
        .map(|p| {
            (0..rf as usize)
                .map(|i| brokers[(start + p + i) % n])
                .collect()
        })
        .collect())
}

/// Checks explicit assignments (CreateTopics `assignments`, CreatePartitions).
pub fn check(image: &MetadataImage, assignments: &[Vec<i32>]) -> Result<(), PlacementError> {
    let Some(first) = assignments.first() else {
        return Err(PlacementError::Assignment("no partitions".into()));
    };
    for (p, replicas) in assignments.iter().enumerate() {
        if replicas.is_empty() {
            return Err(PlacementError::Assignment(format!(
                "partition {p} has no replicas"
            )));
        }
        if replicas.len() != first.len() {
            return Err(PlacementError::Assignment(
                "partitions have different replication factors".into(),
            ));
        }
        for (i, r) in replicas.iter().enumerate() {
            if replicas[..i].contains(r) {
                return Err(PlacementError::Assignment(format!(
                    "partition {p} lists broker {r} twice"
                )));
            }
            if !image.brokers.contains_key(r) {
                return Err(PlacementError::Assignment(format!(
                    "broker {r} is not registered"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{Command, Endpoint};

    fn image(racks: &[(i32, Option<&str>)]) -> MetadataImage {
        let mut img = MetadataImage::default();
        for (i, (id, rack)) in racks.iter().enumerate() {
            img.apply(
                i as u64 + 1,
                Command::RegisterBroker {
                    id: *id,
                    incarnation: uuid::Uuid::new_v4(),
                    endpoints: vec![Endpoint {
                        name: "PLAINTEXT".into(),
                        host: "h".into(),
                        port: 1,
                    }],
                    rack: rack.map(str::to_string),
                },
            );
        }
        img
    }

    #[test]
    fn leaders_spread_and_rf_checked() {
        let img = image(&[(1, None), (2, None), (3, None)]);
        let a = assign(&img, 6, 3, 0).expect("placement");
        let leaders: std::collections::BTreeSet<i32> = a.iter().map(|r| r[0]).collect();
        assert_eq!(leaders.len(), 3);
        assert!(a.iter().all(|r| r.len() == 3));
        assert_eq!(
            assign(&img, 1, 4, 0),
            Err(PlacementError::ReplicationFactor { rf: 4, live: 3 })
        );
    }

    #[test]
    fn replicas_spread_over_racks() {
        let img = image(&[
            (1, Some("a")),
            (2, Some("a")),
            (3, Some("b")),
            (4, Some("b")),
        ]);
        let a = assign(&img, 8, 2, 0).expect("placement");
        for r in &a {
            let racks: std::collections::BTreeSet<_> =
                r.iter().map(|b| img.brokers[b].rack.clone()).collect();
            assert_eq!(racks.len(), 2, "{r:?}");
        }
    }

    #[test]
    fn explicit_assignments_checked() {
        let img = image(&[(1, None), (2, None)]);
        assert!(check(&img, &[vec![1, 2], vec![2, 1]]).is_ok());
        assert!(check(&img, &[vec![1, 1]]).is_err());
        assert!(check(&img, &[vec![1, 9]]).is_err());
        assert!(check(&img, &[vec![1], vec![1, 2]]).is_err());
        assert!(check(&img, &[]).is_err());
    }
}
