//! Hard caps shared by several formats. A format's own caps live beside its decoder and are
//! listed in `docs/FORMAT.md`; every one is checked before anything is allocated.

/// Longest group or disk name, in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 255;
/// Longest recovery-point label, in bytes of UTF-8.
pub const MAX_LABEL_LEN: usize = 1024;
/// Largest disk replicore handles: 64 TiB (the VHDX maximum).
pub const MAX_DISK_SIZE: u64 = 64 << 40;
/// Most disks in one group.
pub const MAX_DISKS_PER_GROUP: usize = 256;
