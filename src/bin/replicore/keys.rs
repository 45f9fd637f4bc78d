//! Key files from the command line: passphrases from an environment variable or the terminal.

use std::io::IsTerminal;
use std::path::Path;

use replicore::crypto::{Key, KeyFile, Secret};
use zeroize::Zeroizing;

use crate::args::{KeygenArgs, Passphrase, RotateArgs};
use crate::out::forceable;
use crate::{CmdResult, Failure};

/// The passphrase: from `--passphrase-env VAR` (or `new_flag`'s variable), else from `default`
/// (REPLICORE_PASSPHRASE or REPLICORE_NEW_PASSPHRASE) when set, else asked on the terminal;
/// with no terminal, a usage error.
fn passphrase(
    var: Option<&str>,
    default: &str,
    prompt: &str,
) -> Result<Zeroizing<String>, Failure> {
    if let Some(v) = var {
        return std::env::var(v).map(Zeroizing::new).map_err(|_| {
            Failure::Usage(format!(
                "the environment variable {v} (--passphrase-env) is not set or not UTF-8"
            ))
        });
    }
    if let Ok(p) = std::env::var(default) {
        return Ok(Zeroizing::new(p));
    }
    if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        return rpassword::prompt_password(prompt)
            .map(Zeroizing::new)
            .map_err(|e| Failure::Other(format!("reading the passphrase: {e}")));
    }
    Err(Failure::Usage(format!(
        "no passphrase: pass --passphrase-env VAR, set {default}, or run on a terminal"
    )))
}

/// Loads and unlocks a key file.
pub fn load(path: &Path, pass: &Passphrase) -> Result<Key, Failure> {
    let file = KeyFile::load(path)?;
    let p = passphrase(
        pass.passphrase_env.as_deref(),
        "REPLICORE_PASSPHRASE",
        &format!("passphrase of {}: ", path.display()),
    )?;
    Ok(file.unlock(Secret::Passphrase(p.as_bytes()))?)
}

pub fn keygen(a: KeygenArgs) -> CmdResult {
    let p = passphrase(
        a.pass.passphrase_env.as_deref(),
        "REPLICORE_PASSPHRASE",
        "passphrase for the new key: ",
    )?;
    if p.is_empty() {
        return Err(Failure::Usage("the passphrase is empty".into()));
    }
    let (file, key) = KeyFile::create(Secret::Passphrase(p.as_bytes()))?;
    file.save(&a.out, a.force).map_err(forceable)?;
    println!("{} key {}", a.out.display(), key.id());
    Ok(())
}

pub fn rotate(a: RotateArgs) -> CmdResult {
    let file = KeyFile::load(&a.key)?;
    let old = passphrase(
        a.pass.passphrase_env.as_deref(),
        "REPLICORE_PASSPHRASE",
        &format!("current passphrase of {}: ", a.key.display()),
    )?;
    let new = passphrase(
        a.new_passphrase_env.as_deref(),
        "REPLICORE_NEW_PASSPHRASE",
        "new passphrase: ",
    )?;
    if new.is_empty() {
        return Err(Failure::Usage("the new passphrase is empty".into()));
    }
    let rotated = file.rewrap(
        Secret::Passphrase(old.as_bytes()),
        Secret::Passphrase(new.as_bytes()),
    )?;
    rotated.save(&a.out, a.force).map_err(forceable)?;
    println!("{} key {}", a.out.display(), rotated.key_id());
    Ok(())
}

/// `replicore key show`: the key's id and verifying key.
pub fn show(path: &Path, pass: &Passphrase, as_json: bool) -> CmdResult {
    let key = load(path, pass)?;
    if as_json {
        let v = serde_json::json!({
            "key_id": key.id().to_hex(),
            "verifying_key": key.verifying_key().to_hex(),
        });
        println!("{v:#}");
    } else {
        println!("key id        {}", key.id());
        println!("verifying key {}", key.verifying_key());
    }
    Ok(())
}
