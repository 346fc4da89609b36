//! A PostgreSQL server for the tests and the import benchmark.
//!
//! With `HP_TEST_DATABASE_URL` set (as `.ci/run` does), that server is used.
//! Without it, outside CI, a throwaway server is started from the newest
//! `/usr/lib/postgresql/*/bin` (or `initdb` on PATH) in a temporary
//! directory, listening on 127.0.0.1 and a free port only, as the `postgres`
//! (or `nobody`) user when run as root because `initdb` refuses root; it is
//! shared by the tests running at the same time and stopped when the last one
//! is done. On CI a missing URL is a failure, elsewhere a missing PostgreSQL
//! skips the test with a message. Every user gets a database of its own,
//! dropped afterwards.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, Weak};

/// A throwaway server; stopped when dropped.
pub struct Server {
    dir: tempfile::TempDir,
    bin: PathBuf,
    run_as: Option<String>,
    pub admin_url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = self.command("pg_ctl").arg("-D").arg(&data).args(["-m", "immediate", "-w", "stop"]).output();
    }
}

impl Server {
    fn command(&self, program: &str) -> Command {
        command(&self.bin, self.run_as.as_deref(), program)
    }
}

fn command(bin: &Path, run_as: Option<&str>, program: &str) -> Command {
    match run_as {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(bin.join(program));
            c
        }
        None => Command::new(bin.join(program)),
    }
}

/// The directory with `initdb` and `pg_ctl`, newest version first.
fn postgres_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    if let Some((_, bin)) = found.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists())
}

fn uid_of(user: &str) -> Option<(u32, u32)> {
    let out = Command::new("id").args(["-u", user]).output().ok()?;
    let uid = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    let out = Command::new("id").args(["-g", user]).output().ok()?;
    let gid = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some((uid, gid))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn start() -> Result<Server, String> {
    let bin = postgres_bin().ok_or("no PostgreSQL binaries (install Debian's `postgresql`)")?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let run_as = if root {
        let user = ["postgres", "nobody"].into_iter().find(|u| uid_of(u).is_some()).ok_or("no user to run as")?;
        let (uid, gid) = uid_of(user).ok_or("no uid")?;
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).map_err(|e| e.to_string())?;
        Some(user.to_string())
    } else {
        None
    };
    let data = dir.path().join("data");
    let out = command(&bin, run_as.as_deref(), "initdb")
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
        .output()
        .map_err(|e| format!("initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let port = free_port();
    let options = format!(
        "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
        dir.path().display()
    );
    let out = command(&bin, run_as.as_deref(), "pg_ctl")
        .arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(dir.path().join("log"))
        .args(["-w", "-o", &options, "start"])
        .output()
        .map_err(|e| format!("pg_ctl: {e}"))?;
    if !out.status.success() {
        let log = std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
        return Err(format!("pg_ctl start failed: {}{log}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(Server { dir, bin, run_as, admin_url: format!("postgres://postgres@127.0.0.1:{port}/postgres") })
}

static SHARED: Mutex<Option<Weak<Server>>> = Mutex::new(None);

/// A server to make databases on, or `None` (with a message) when there is
/// none outside CI.
pub struct Postgres {
    admin_url: String,
    _server: Option<Arc<Server>>,
}

impl Postgres {
    pub fn get() -> Option<Postgres> {
        if let Ok(url) = std::env::var("HP_TEST_DATABASE_URL") {
            return Some(Postgres { admin_url: url, _server: None });
        }
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("HP_TEST_DATABASE_URL is not set on CI: .ci/run must start PostgreSQL and export it");
        }
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        let server = match shared.as_ref().and_then(Weak::upgrade) {
            Some(s) => s,
            None => match start() {
                Ok(s) => {
                    let s = Arc::new(s);
                    *shared = Some(Arc::downgrade(&s));
                    s
                }
                Err(e) => {
                    eprintln!("skipped: no PostgreSQL server ({e}); set HP_TEST_DATABASE_URL or install PostgreSQL");
                    return None;
                }
            },
        };
        Some(Postgres { admin_url: server.admin_url.clone(), _server: Some(server) })
    }

    /// A fresh, empty database; dropped with the returned value.
    pub fn database(&self, prefix: &str) -> Database {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("{prefix}_{}_{n}", std::process::id());
        let mut admin = postgres::Client::connect(&self.admin_url, postgres::NoTls).expect("connect to PostgreSQL");
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).expect("drop an old test database");
        admin.batch_execute(&format!("CREATE DATABASE {name}")).expect("create the test database");
        let config: postgres::Config = self.admin_url.parse().expect("admin URL");
        let mut url = config.clone();
        url.dbname(&name);
        Database {
            admin_url: self.admin_url.clone(),
            name,
            config: url,
            _postgres: Postgres { admin_url: self.admin_url.clone(), _server: self._server.clone() },
        }
    }
}

/// A database of one test.
pub struct Database {
    admin_url: String,
    pub name: String,
    pub config: postgres::Config,
    _postgres: Postgres,
}

impl Database {
    pub fn client(&self) -> postgres::Client {
        self.config.connect(postgres::NoTls).expect("connect to the test database")
    }

    /// A `key=value` connection string libpq and the importer both accept.
    pub fn conninfo(&self) -> String {
        let host = match self.config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(h)) => h.clone(),
            Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        let user = self.config.get_user().unwrap_or("postgres");
        let mut s = format!("host={host} port={port} user={user} dbname={}", self.name);
        if let Some(pw) = self.config.get_password() {
            s += &format!(" password={}", String::from_utf8_lossy(pw));
        }
        s
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Ok(mut admin) = postgres::Client::connect(&self.admin_url, postgres::NoTls) {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}
