//! Bundles: the shipped unit. One bundle holds one recovery point of a group: its header (the
//! point's place in the chain), one extent manifest per disk, and the blobs the manifests
//! reference, sealed under the group's key before they leave the primary. Format:
//! `docs/FORMAT.md` §13.
//!
//! - [`seed`] turns disk images into the group's base bundle and first change log;
//! - [`ship`] turns a sealed change log into one bundle per recovery point;
//! - [`Bundle::open`] + [`Bundle::verify`] check a bundle without the key (the recovery site),
//!   [`Bundle::verify_with_key`] also authenticates every blob.
//!
//! The group's place in its chain on the primary is a [`ShipState`] (`.rcship`, §14).

mod apply;
#[cfg(test)]
mod apply_crash_tests;
mod apply_state;
pub(crate) mod format;
mod protection;
mod reader;
mod resync_ship;
mod seed;
mod ship;
mod state;
mod track;
mod writer;

pub use apply::{Applied, apply, sign_for_apply};
pub use apply_state::ApplyState;
pub use format::{BundleHeader, BundleKind, DiskManifest, VERSION_MAJOR};
pub use protection::ProtectionRecord;
pub(crate) use reader::check_sealed;
pub use reader::{Bundle, BundleStats};
pub use resync_ship::{ResyncOptions, Resynced, resync_ship, resync_ship_from};
pub use seed::{DEFAULT_SEED_CHUNK, SeedOptions, Seeded, seed};
pub use ship::{ShipOptions, bundle_file_name, ship};
pub use state::ShipState;
pub use track::{TrackFrom, track};
pub use writer::{BundleWriter, WrittenBundle};
