//! Harness-less crash tests: the test binary is both the parent (running the tests) and the
//! child process it kills (run with an environment variable naming its work).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs as the child when `env` is set (calling `child` with its value), else runs `tests`
/// (honouring `--list` and name filters, as the default harness does).
pub fn main(env: &str, child: fn(&Path), tests: &[(&str, fn())]) {
    if let Some(work) = std::env::var_os(env) {
        child(Path::new(&work));
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _) in tests {
            println!("{name}: test");
        }
        return;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    for (name, test) in tests {
        if filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())) {
            print!("test {name} ... ");
            std::io::stdout().flush().unwrap();
            test();
            println!("ok");
        }
    }
}

/// Runs this binary as the child (`env` = `work`), and kills it (SIGKILL: no destructor, no
/// cleanup runs) after it printed `lines` lines, plus `delay`.
pub fn run_child_and_kill(env: &str, work: &Path, lines: usize, delay: Duration) {
    let mut c = Command::new(std::env::current_exe().unwrap())
        .env(env, work)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(c.stdout.take().unwrap());
    let mut line = String::new();
    for _ in 0..lines {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
    }
    std::thread::sleep(delay);
    let _ = c.kill();
    c.wait().unwrap();
}
