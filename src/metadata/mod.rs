//! The cluster metadata layer: the KRaft settings ([`ClusterConfig`]), the records the controller
//! writes to the metadata log ([`records`]), the image every node applies them to ([`image`]) and
//! the change feed front ends read it from ([`MetadataFeed`]).
//!
//! The image lives wherever the quorum's state machine runs (the `esker-raft` thread applies
//! records); everyone else reads immutable snapshots of it (`Arc<MetadataImage>`) from a watch
//! channel, so readers never lock and never see a half-applied record.

mod config;
pub mod image;
pub mod records;

use std::sync::Arc;

use tokio::sync::watch;

pub use config::{ClusterConfig, Roles};
pub use image::{BrokerRegistration, Endpoint, MetadataImage, PartitionImage, TopicImage};
pub use records::{Applied, Command, Reply};

/// The state machine the quorum replicates: the image, published after every applied entry.
pub struct MetadataStateMachine {
    image: MetadataImage,
    tx: watch::Sender<Arc<MetadataImage>>,
}

/// The read side of the image: the latest applied snapshot and a way to await changes.
#[derive(Clone)]
pub struct MetadataFeed {
    rx: watch::Receiver<Arc<MetadataImage>>,
}

impl MetadataFeed {
    /// The image as of the last applied entry.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.rx.borrow().clone()
    }

    /// A receiver that is notified on every applied entry.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.rx.clone()
    }

    /// Waits until the image has applied `index` (or a later entry), up to `timeout`.
    pub async fn wait_for(&self, index: u64, timeout: std::time::Duration) -> bool {
        let mut rx = self.rx.clone();
        tokio::time::timeout(timeout, rx.wait_for(|i| i.applied_index >= index))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// A new, empty state machine and its feed.
pub fn state_machine() -> (MetadataStateMachine, MetadataFeed) {
    let image = MetadataImage::default();
    let (tx, rx) = watch::channel(Arc::new(image.clone()));
    (MetadataStateMachine { image, tx }, MetadataFeed { rx })
}

impl crate::raft::StateMachine for MetadataStateMachine {
    fn apply(&mut self, index: u64, command: &[u8]) -> Vec<u8> {
        let reply = match serde_json::from_slice::<Command>(command) {
            Ok(cmd) => self.image.apply(index, cmd),
            Err(e) => {
                tracing::error!(index, error = %e, "undecodable metadata command skipped");
                self.image.applied_index = index;
                Reply::Error(format!("undecodable command: {e}"))
            }
        };
        self.tx.send_replace(Arc::new(self.image.clone()));
        serde_json::to_vec(&Applied { index, reply }).unwrap_or_else(|e| {
            tracing::error!(index, error = %e, "cannot encode a metadata reply");
            Vec::new()
        })
    }

    fn snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(&self.image).unwrap_or_default()
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        let image: MetadataImage =
            serde_json::from_slice(snapshot).map_err(|e| format!("bad metadata snapshot: {e}"))?;
        self.image = image;
        self.tx.send_replace(Arc::new(self.image.clone()));
        Ok(())
    }
}
