//! The command line's verbs and arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Disaster-recovery replication for virtual machine disks: change logs, encrypted bundles,
/// recovery-point vaults, retention, failover and resync.
#[derive(Debug, Parser)]
#[command(name = "replicore", version, propagate_version = true)]
#[command(
    after_help = "Exit codes: 0 success, 2 usage or invalid argument, 3 corruption, \
4 authentication, 5 broken chain, conflict, locked or an existing output (--force replaces \
it), 6 I/O or not found, 7 resync required, \
1 anything else."
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Creates a passphrase-protected key file (the passphrase: see --passphrase-env).
    Keygen(KeygenArgs),
    /// Key file operations.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Seeds a group: reads its disk images into a base bundle and starts its change log.
    Seed(SeedArgs),
    /// Change log operations (on the primary).
    #[command(subcommand)]
    Log(LogCmd),
    /// Ships a sealed change log as one bundle per recovery point; prints their paths.
    Ship(ShipArgs),
    /// Vault operations (on the recovery site; no key needed but for verify --key).
    #[command(subcommand)]
    Vault(VaultCmd),
    /// Writes every disk of a group at a recovery point as DIR/NAME.img.
    Failover(FailoverArgs),
    /// Resynchronization by fixed-chunk checksums (failback is the same, reversed).
    #[command(subcommand)]
    Resync(ResyncCmd),
    /// Applies bundles to a replica's disks in chain order (the reverse replication of a
    /// failback), checked against the apply state beside the disks: a gap, a fork, a replay,
    /// another key or a damaged bundle is refused before a byte is written.
    Apply(ApplyArgs),
    /// Shows a group's protection state at a site (GROUP.rcprot beside its log), or moves it
    /// (--set), refusing a move the state machine forbids.
    Protection(ProtectionArgs),
    /// What an operator watches: on the primary (--log), pending bytes against the resync
    /// threshold, whether a resync is needed and why, the last point shipped; at the recovery
    /// site (--vault), per group the newest point, the newest app-consistent one, the lag
    /// behind the replication interval and the health it gives.
    Status(StatusArgs),
    /// Runs the whole job on a sample disk in a temporary directory and reports.
    Demo,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The vault (recovery site).
    #[arg(long, value_name = "DIR", required_unless_present = "log")]
    pub vault: Option<PathBuf>,
    /// The group's active change log (primary); its ship state is read beside it.
    #[arg(long, value_name = "LOGFILE")]
    pub log: Option<PathBuf>,
    /// The replication interval in seconds: 30, 300 or 900.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub frequency: u64,
    /// The time to judge the lag at (RFC 3339; default now).
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
    /// With --log: a disk of the group and its image, to tell a resized disk (repeat).
    #[arg(long = "disk", value_name = "NAME=IMAGE", requires = "log")]
    pub disks: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Where a key file's passphrase comes from.
#[derive(Debug, Args, Clone)]
pub struct Passphrase {
    /// Read the key file's passphrase from this environment variable (default:
    /// REPLICORE_PASSPHRASE, else asked on the terminal).
    #[arg(long, value_name = "VAR")]
    pub passphrase_env: Option<String>,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// The key file to create (it must not exist unless --force; created 0600).
    #[arg(long, value_name = "KEYFILE")]
    pub out: PathBuf,
    /// Replace an existing key file at --out.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub pass: Passphrase,
}

#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// Rewraps a key file under a new passphrase (same key: existing bundles stay readable).
    Rotate(RotateArgs),
    /// Prints a key's id and the verifying key its points are signed with (public: give it to
    /// `vault pin-key` at the recovery site).
    Show {
        /// The key file.
        #[arg(long, value_name = "KEYFILE")]
        key: PathBuf,
        #[command(flatten)]
        pass: Passphrase,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The current key file.
    #[arg(long, value_name = "KEYFILE")]
    pub key: PathBuf,
    /// The new key file to write (it must not exist unless --force; created 0600).
    #[arg(long, value_name = "NEWKEYFILE")]
    pub out: PathBuf,
    /// Replace an existing file at --out.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub pass: Passphrase,
    /// Read the new passphrase from this environment variable (default:
    /// REPLICORE_NEW_PASSPHRASE, else asked on the terminal).
    #[arg(long, value_name = "VAR")]
    pub new_passphrase_env: Option<String>,
}

#[derive(Debug, Args)]
pub struct SeedArgs {
    /// The group's key file.
    #[arg(long, value_name = "KEYFILE")]
    pub key: PathBuf,
    #[command(flatten)]
    pub pass: Passphrase,
    /// The group's name.
    #[arg(long, value_name = "NAME")]
    pub group: String,
    /// A disk of the group and its image (repeat for each disk).
    #[arg(long = "disk", value_name = "NAME=IMAGE", required = true)]
    pub disks: Vec<String>,
    /// The change log to create (the ship state goes beside it as GROUP.rcship).
    #[arg(long, value_name = "LOGFILE")]
    pub log: PathBuf,
    /// The base bundle to write.
    #[arg(long, value_name = "BUNDLE")]
    pub out: PathBuf,
    /// Chunk size: a power of two from 4K to 8M (default 1M).
    #[arg(long, value_name = "SIZE")]
    pub chunk_size: Option<String>,
    /// Replace an existing log, bundle or ship state (starts a new tracking session).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum LogCmd {
    /// Records ranges of an image as guest writes (extents JSON: [{"start":..,"length":..}],
    /// as `qemu-img map --output=json` prints; "zero": true records a trim).
    Capture(CaptureArgs),
    /// Closes a recovery point with a crash- or app-consistent marker.
    Mark(MarkArgs),
    /// Seals the log as SEALEDFILE and starts a new one in its place.
    Rotate(RotateLogArgs),
    /// Describes a change log (active or sealed).
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// The active change log.
    pub logfile: PathBuf,
    /// The disk written to.
    #[arg(long, value_name = "NAME")]
    pub disk: String,
    /// The image the written bytes are read from.
    #[arg(long, value_name = "IMAGE")]
    pub image: PathBuf,
    /// The extents file, or - for standard input.
    #[arg(long, value_name = "FILE|-")]
    pub extents: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    /// Crash-consistent.
    Crash,
    /// Application-consistent (applications quiesced).
    App,
}

#[derive(Debug, Args)]
pub struct MarkArgs {
    /// The active change log.
    pub logfile: PathBuf,
    /// The point's consistency.
    #[arg(long, value_enum)]
    pub kind: Kind,
    /// A label for the point.
    #[arg(long, default_value = "")]
    pub label: String,
    /// The point's time, RFC 3339 (default: now).
    #[arg(long, value_name = "RFC3339")]
    pub time: Option<String>,
}

#[derive(Debug, Args)]
pub struct RotateLogArgs {
    /// The active change log.
    pub logfile: PathBuf,
    /// Where the sealed log goes (it must not exist unless --force).
    #[arg(long, value_name = "SEALEDFILE")]
    pub sealed_out: PathBuf,
    /// Replace an existing file at --sealed-out.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The change log.
    pub logfile: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShipArgs {
    /// The group's key file.
    #[arg(long, value_name = "KEYFILE")]
    pub key: PathBuf,
    #[command(flatten)]
    pub pass: Passphrase,
    /// The sealed change log.
    pub sealed: PathBuf,
    /// Where the bundles go.
    #[arg(long, value_name = "DIR")]
    pub out_dir: PathBuf,
    /// The group's ship state (default: GROUP.rcship beside the sealed log, as seed left it
    /// beside the change log).
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Replace bundles already in --out-dir (shipping again after a crash before the ship
    /// state was saved writes the same names).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum VaultCmd {
    /// Creates a vault in a new or empty directory.
    Init {
        /// The vault's directory.
        dir: PathBuf,
    },
    /// Ingests bundles (in order), without the key.
    Ingest {
        /// The vault.
        dir: PathBuf,
        /// The bundles, oldest first.
        #[arg(required = true)]
        bundles: Vec<PathBuf>,
    },
    /// Lists recovery points, oldest first.
    Points {
        /// The vault.
        dir: PathBuf,
        /// Only this group.
        #[arg(long, value_name = "NAME")]
        group: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Prunes every group by a retention policy, without the key.
    Prune(PruneArgs),
    /// Removes data no point references (after prune).
    Gc {
        /// The vault.
        dir: PathBuf,
    },
    /// Checks every stored byte and every point's signature; with --key also decrypts every
    /// blob.
    Verify {
        /// The vault.
        dir: PathBuf,
        /// The key file of the groups to check deeply.
        #[arg(long, value_name = "KEYFILE")]
        key: Option<PathBuf>,
        #[command(flatten)]
        pass: Passphrase,
        /// The group the key must open (without it, with --key: every group) and whose head
        /// --expect-seq checks.
        #[arg(long, value_name = "NAME")]
        group: Option<String>,
        /// Refuse (exit 5) a head behind this sequence number: the last one the primary
        /// shipped (`replicore ship` prints it). Catches a rolled-back vault.
        #[arg(long, value_name = "SEQ", requires = "group")]
        expect_seq: Option<u64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Replaces what pruning accumulated in a group's first point file by one checkpoint
    /// signed with the group's key, so that the chain's metadata stays bounded.
    Compact {
        /// The vault.
        dir: PathBuf,
        /// The group.
        #[arg(long, value_name = "NAME")]
        group: String,
        /// The group's key file.
        #[arg(long, value_name = "KEYFILE")]
        key: PathBuf,
        #[command(flatten)]
        pass: Passphrase,
    },
    /// Takes the point signature of a group's point (the newest by default), for a resync into
    /// the chain at the primary (`replicore resync ship`): keyed chunk ids, sealed with the
    /// group's key, bound to the point.
    Signature {
        /// The vault.
        dir: PathBuf,
        /// The group.
        #[arg(long, value_name = "NAME")]
        group: String,
        /// The group's key file.
        #[arg(long, value_name = "KEYFILE")]
        key: PathBuf,
        #[command(flatten)]
        pass: Passphrase,
        /// latest (the default: a resync continues the newest point), or a point id.
        #[arg(long, value_name = "POINT", default_value = "latest")]
        point: String,
        /// The point signature to write (created 0600).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Replace an existing file at --out.
        #[arg(long)]
        force: bool,
    },
    /// Writes a lost or damaged group head again from the intact, signed point files.
    RebuildHead {
        /// The vault.
        dir: PathBuf,
        /// The group.
        #[arg(long, value_name = "NAME")]
        group: String,
    },
    /// Pins a group's verifying key (`replicore key show` prints it): ingest and verify then
    /// refuse any point signed by another key, a forged base included.
    PinKey {
        /// The vault.
        dir: PathBuf,
        /// The group.
        #[arg(long, value_name = "NAME")]
        group: String,
        /// The verifying key, 64 hex digits.
        #[arg(long, value_name = "HEX")]
        verifying_key: String,
        /// Replace a pin already there.
        #[arg(long)]
        replace: bool,
    },
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// The vault.
    pub dir: PathBuf,
    /// Keep every point younger than this many hours (1 to 72).
    #[arg(long, value_name = "HOURS")]
    pub window: u32,
    /// Keep app-consistent points at this frequency in hours (1 to 12) for another window.
    #[arg(long, value_name = "HOURS")]
    pub app_every: Option<u32>,
    /// Keep the newest point of each of this many hours past the window (0 to 24).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub extra_hourly: u32,
    /// Always keep the newest N points (1 to 100000).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub keep_last: u32,
    /// Plan as of this time, RFC 3339 (default: now).
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<String>,
    /// Show the plan; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct FailoverArgs {
    /// The vault.
    pub dir: PathBuf,
    /// The group.
    #[arg(long, value_name = "NAME")]
    pub group: String,
    /// latest, latest-app, a point id, or at:RFC3339 (the newest point at or before).
    #[arg(long, value_name = "POINT")]
    pub point: String,
    /// The group's key file.
    #[arg(long, value_name = "KEYFILE")]
    pub key: PathBuf,
    #[command(flatten)]
    pub pass: Passphrase,
    /// Where new images go, as DIR/<disk>.img (created if missing). Needed unless every disk
    /// has a --target.
    #[arg(long, value_name = "DIR", required_unless_present = "targets")]
    pub out_dir: Option<PathBuf>,
    /// Write disk NAME onto existing storage at PATH instead of a new image: a block device
    /// (a LUN, a logical volume; not mounted) or a pre-created file of at least the disk's
    /// size. Every byte of the disk is written (zeros discarded or zeroed out where the device
    /// supports it); bytes past the disk's size are left alone. Repeat for each such disk.
    #[arg(long = "target", value_name = "NAME=PATH")]
    pub targets: Vec<String>,
    /// Refuse (exit 5) when the group's head is behind this sequence number: the last one the
    /// primary shipped. Catches a vault rolled back to an older point.
    #[arg(long, value_name = "SEQ")]
    pub expect_seq: Option<u64>,
    /// Start tracking the recovered disks: a new change log here (its ship state and the
    /// site's protection state go beside it), whose points follow the point failed over to.
    #[arg(long, value_name = "LOGFILE")]
    pub log: Option<PathBuf>,
    /// How the failover is recorded with --log: unplanned (default), planned or test.
    #[arg(
        long,
        value_name = "KIND",
        default_value = "unplanned",
        requires = "log"
    )]
    pub kind: String,
    /// Replace images already in --out-dir (and a log at --log).
    #[arg(long)]
    pub force: bool,
}

/// `replicore apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The group's key file.
    #[arg(long, value_name = "KEYFILE")]
    pub key: PathBuf,
    #[command(flatten)]
    pub pass: Passphrase,
    /// A disk of the group and its image (repeat for each disk).
    #[arg(long = "disk", value_name = "NAME=IMAGE", required = true)]
    pub disks: Vec<String>,
    /// The group (finds GROUP.rcapply beside the first disk).
    #[arg(long, value_name = "NAME", required_unless_present = "state")]
    pub group: Option<String>,
    /// The disks' apply state (default GROUP.rcapply beside the first disk).
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// The bundles, applied in sequence order.
    #[arg(required = true, value_name = "BUNDLE")]
    pub bundles: Vec<PathBuf>,
}

/// `replicore resync sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The group's key file.
    #[arg(long, value_name = "KEYFILE")]
    pub key: PathBuf,
    #[command(flatten)]
    pub pass: Passphrase,
    /// The group.
    #[arg(long, value_name = "NAME")]
    pub group: String,
    /// A disk of the group and its image (repeat for each disk, in the group's order).
    #[arg(long = "disk", value_name = "NAME=IMAGE", required = true)]
    pub disks: Vec<String>,
    /// The point signature to write (send it to the recovery site).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// The apply state to start (default GROUP.rcapply beside the first disk).
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Chunk size: a power of two from 4K to 8M (default 64K).
    #[arg(long, value_name = "SIZE")]
    pub chunk_size: Option<String>,
    /// Replace an existing signature and apply state.
    #[arg(long)]
    pub force: bool,
}

/// `replicore protection`.
#[derive(Debug, Args)]
pub struct ProtectionArgs {
    /// The directory of the group's log (where GROUP.rcprot is).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// The group.
    #[arg(long, value_name = "NAME")]
    pub group: String,
    /// Move to this state (e.g. committed, reprotecting, protected), if the state machine
    /// allows it from the current one (else exit 2).
    #[arg(long, value_name = "STATE")]
    pub set: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// How a resync file is protected: sealed under the group's key, or plain (keyless).
#[derive(Debug, Args, Clone)]
pub struct Sealing {
    /// The group's key file: the signature's hashes are keyed and the files are encrypted
    /// and authenticated with it.
    #[arg(long, value_name = "KEYFILE", conflicts_with = "plain")]
    pub key: Option<PathBuf>,
    /// Without a key: a plain file, whose hashes and data anyone who holds it can read, and
    /// anyone can forge (for a copy that never leaves the host).
    #[arg(long)]
    pub plain: bool,
    #[command(flatten)]
    pub pass: Passphrase,
}

#[derive(Debug, Subcommand)]
pub enum ResyncCmd {
    /// Computes the fixed-chunk signature of an image (the side to be updated).
    Signature {
        /// The image.
        image: PathBuf,
        /// The signature file to write (created 0600; it must not exist unless --force).
        #[arg(long, value_name = "SIGFILE")]
        out: PathBuf,
        /// Replace an existing file at --out.
        #[arg(long)]
        force: bool,
        /// Chunk size: a power of two from 4K to 8M (default 64K).
        #[arg(long, value_name = "SIZE")]
        chunk_size: Option<String>,
        #[command(flatten)]
        sealing: Sealing,
    },
    /// Computes the chunks of SOURCE that differ from a signature.
    Delta {
        /// The up-to-date image.
        source: PathBuf,
        /// The other side's signature.
        #[arg(long, value_name = "SIGFILE")]
        signature: PathBuf,
        /// The delta file to write (created 0600; it must not exist unless --force).
        #[arg(long, value_name = "DELTAFILE")]
        out: PathBuf,
        /// Replace an existing file at --out.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        sealing: Sealing,
    },
    /// Applies a delta to the image its signature was taken of (any other image is refused
    /// before a byte is written).
    Apply {
        /// The image to update.
        target: PathBuf,
        /// The delta.
        delta: PathBuf,
        #[command(flatten)]
        sealing: Sealing,
    },
    /// Resynchronizes a group into its chain at the primary: compares the disks (from a
    /// snapshot) with the vault's point signature (`replicore vault signature`), writes the
    /// next point of the chain holding only the chunks that differ, starts a new change log
    /// and saves the ship state beside it (as seed does); replication then goes on from it.
    Ship {
        /// The group's key file.
        #[arg(long, value_name = "KEYFILE")]
        key: PathBuf,
        #[command(flatten)]
        pass: Passphrase,
        /// The point signature the vault wrote.
        #[arg(long, value_name = "FILE")]
        signature: PathBuf,
        /// The group (must be the signature's).
        #[arg(long, value_name = "NAME")]
        group: String,
        /// A disk of the group and its image (repeat for each disk).
        #[arg(long = "disk", value_name = "NAME=IMAGE", required = true)]
        disks: Vec<String>,
        /// The new change log (the ship state goes beside it as GROUP.rcship).
        #[arg(long, value_name = "LOGFILE")]
        log: PathBuf,
        /// Where the resync point's bundle goes.
        #[arg(long, value_name = "DIR")]
        out_dir: PathBuf,
        /// Replace the log and bundle of an earlier, interrupted resync.
        #[arg(long)]
        force: bool,
    },
    /// At the original site after a failover: the keyed signature of the group's stale disks,
    /// for the recovery site's `resync ship` (the reverse resync of a reprotect), and the
    /// apply state beside them that expects the resync point made against it.
    Sign(SignArgs),
    /// Makes TARGET identical to SOURCE (both local), copying only differing chunks.
    Run {
        /// The up-to-date image.
        source: PathBuf,
        /// The image to update (created if missing).
        target: PathBuf,
        /// Chunk size: a power of two from 4K to 8M (default 64K).
        #[arg(long, value_name = "SIZE")]
        chunk_size: Option<String>,
    },
}

/// Parses the size given to `flag`: a number of bytes with an optional K, M or G suffix (powers
/// of 1024), below 4 GiB.
pub fn size(s: &str, flag: &str) -> Result<u32, crate::Failure> {
    let bad = || {
        crate::Failure::Usage(format!(
            "{flag} `{s}` is not a size in bytes below 4G (like 65536, 64K or 1M)"
        ))
    };
    let t = s.trim();
    let (num, mul) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&t[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    n.checked_mul(mul)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(bad)
}
