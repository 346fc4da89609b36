//! Reading a Hydra's build history from its PostgreSQL database (tables
//! `Builds`, `Jobsets`, `BuildSteps` of Hydra's schema, version 63 or later,
//! when `Builds.jobset_id` became the link to the jobset).
//!
//! Connection settings follow libpq: a `postgres://` URL (or `key=value`
//! string) wins, and what it leaves out comes from `PGHOST`, `PGPORT`,
//! `PGUSER`, `PGDATABASE` and `PGPASSWORD`, then libpq's defaults. Rows are
//! streamed from a server-side portal in read-only transaction, a batch at a
//! time, so memory holds one batch however long the history. This module
//! turns rows into the importer's types and decides nothing about them
//! (`trace::import::hydra_db` does).

use crate::trace::import::hydra_db::{BuildFacts, DbRow, StepFacts};
use postgres::{Client, Config, NoTls, Row};
use std::path::Path;

/// Which builds to read; all bounds are on the build's queue time
/// (`Builds.timestamp`, Unix seconds).
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    pub since: Option<i64>,
    /// Exclusive.
    pub until: Option<i64>,
    /// Project names; empty: every project.
    pub projects: Vec<String>,
    /// Jobset names or `project:jobset`; empty: every jobset.
    pub jobsets: Vec<String>,
}

/// What went wrong, by whose fault.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The settings do not make a connection string.
    #[error("bad database settings: {0}")]
    Settings(String),
    /// The server could not be reached or refused us.
    #[error("cannot connect to the database {target}: {source}")]
    Connect { target: String, source: ConnectError },
    /// The database does not have Hydra's tables as expected.
    #[error(
        "the database does not look like Hydra's (tables builds, jobsets, buildsteps of schema version 63 or later; see docs/import.md): {0}"
    )]
    Schema(String),
    /// Reading failed part way, or the consumer of the rows failed.
    #[error("reading the history failed: {0}")]
    Read(String),
}

/// Builds the connection settings from `url` and the libpq environment
/// variables (`env` looks one up).
pub fn settings(url: Option<&str>, env: impl Fn(&str) -> Option<String>) -> Result<Config, DbError> {
    let pgport = env("PGPORT").filter(|p| !p.is_empty());
    if let Some(p) = &pgport {
        p.parse::<u16>().map_err(|_| DbError::Settings(format!("PGPORT `{p}` is not a port")))?;
    }
    let mut config: Config = match url {
        // The client library fills in 5432 for a host without a port; libpq would use PGPORT.
        Some(u) => with_default_port(u, pgport.as_deref())
            .parse()
            .map_err(|e: postgres::Error| DbError::Settings(e.to_string()))?,
        None => Config::new(),
    };
    if config.get_hosts().is_empty() {
        let hosts = env("PGHOST").filter(|h| !h.is_empty()).unwrap_or_else(|| {
            // libpq's default is the local socket directory.
            if Path::new("/var/run/postgresql").is_dir() { "/var/run/postgresql".into() } else { "localhost".into() }
        });
        for h in hosts.split(',') {
            config.host(h.trim());
        }
    }
    if url.is_none()
        && let Some(p) = &pgport
    {
        config.port(p.parse().unwrap_or(5432));
    }
    if config.get_user().is_none() {
        let user = env("PGUSER").or_else(|| env("USER")).unwrap_or_else(|| "postgres".into());
        config.user(&user);
    }
    if config.get_dbname().is_none() {
        let db = env("PGDATABASE").or_else(|| config.get_user().map(str::to_string));
        if let Some(db) = db {
            config.dbname(&db);
        }
    }
    if config.get_password().is_none()
        && let Some(pw) = env("PGPASSWORD")
    {
        config.password(pw);
    }
    config.application_name("hydra-provisioner trace import");
    Ok(config)
}

/// The connection string with `port` given to every host that names none
/// (`host:port` in a URL, `port=` in the key=value form).
fn with_default_port(url: &str, port: Option<&str>) -> String {
    let Some(port) = port else { return url.to_string() };
    let Some((scheme, rest)) = url.split_once("://") else {
        let named = url.split_whitespace().any(|kv| kv.starts_with("port="));
        return if named { url.to_string() } else { format!("{url} port={port}") };
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (credentials, hosts) = match authority.rsplit_once('@') {
        Some((c, h)) => (format!("{c}@"), h),
        None => (String::new(), authority),
    };
    if hosts.is_empty() {
        return url.to_string();
    }
    let hosts: Vec<String> = hosts
        .split(',')
        .map(|h| {
            let after_bracket = h.rsplit_once(']').map_or(h, |(_, p)| p);
            if after_bracket.contains(':') { h.to_string() } else { format!("{h}:{port}") }
        })
        .collect();
    format!("{scheme}://{credentials}{}{tail}", hosts.join(","))
}

/// Where a connection goes, for messages (never the password).
pub fn describe(config: &Config) -> String {
    let host = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            postgres::config::Host::Tcp(s) => s.clone(),
            #[cfg(unix)]
            postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .collect::<Vec<_>>()
        .join(",");
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{}@{host}:{port}/{}", config.get_user().unwrap_or("?"), config.get_dbname().unwrap_or("?"))
}

/// Why a connection failed, in the server's or the system's words.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConnectError(String);

pub fn connect(config: &Config) -> Result<Client, DbError> {
    config.connect(NoTls).map_err(|e| DbError::Connect { target: describe(config), source: ConnectError(message(&e)) })
}

const FILTER: &str = "($1::int8 IS NULL OR b.timestamp >= $1) AND ($2::int8 IS NULL OR b.timestamp < $2) \
    AND (cardinality($3::text[]) = 0 OR j.project = ANY($3)) \
    AND (cardinality($4::text[]) = 0 OR j.name = ANY($4) OR (j.project || ':' || j.name) = ANY($4))";

/// The server's own words where there are some (`postgres::Error` shows only "db error").
fn message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => {
            let mut s = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(inner) = source {
                let inner_text = inner.to_string();
                if !s.contains(&inner_text) {
                    s += &format!(": {inner_text}");
                }
                source = inner.source();
            }
            s
        }
    }
}

fn schema_or_read(e: postgres::Error) -> DbError {
    // Undefined table, column or function, or a column of another type: not Hydra's schema.
    match e.code().map(|c| c.code()) {
        Some("42P01" | "42703" | "42883" | "42804") => DbError::Schema(message(&e)),
        _ => DbError::Read(message(&e)),
    }
}

/// How many rows [`stream`] will hand over (for a progress bar).
pub fn count(client: &mut Client, filter: &HistoryFilter) -> Result<u64, DbError> {
    let sql = format!(
        "SELECT count(*) FROM builds b JOIN jobsets j ON j.id = b.jobset_id \
         LEFT JOIN buildsteps s ON s.build = b.id WHERE {FILTER}"
    );
    let row = client
        .query_one(&sql, &[&filter.since, &filter.until, &filter.projects, &filter.jobsets])
        .map_err(schema_or_read)?;
    Ok(row.get::<_, i64>(0).max(0) as u64)
}

/// Streams the rows, sorted by queue time, build id and step number, `batch`
/// at a time, into `each`; stops at the first error of `each`.
pub fn stream(
    client: &mut Client,
    filter: &HistoryFilter,
    batch: i32,
    mut each: impl FnMut(DbRow) -> std::io::Result<()>,
) -> Result<(), DbError> {
    let sql = format!(
        "SELECT b.id::int8, b.timestamp::int8, j.project, j.name, b.job, b.drvpath, b.system, \
                b.priority::int8, b.globalpriority::int8, b.iscachedbuild::int8, b.finished::int8, \
                s.stepnr::int8, s.type::int8, s.drvpath, s.busy::int8, s.status::int8, \
                s.starttime::int8, s.stoptime::int8, s.machine, s.system, s.propagatedfrom::int8, s.overhead::int8 \
         FROM builds b JOIN jobsets j ON j.id = b.jobset_id LEFT JOIN buildsteps s ON s.build = b.id \
         WHERE {FILTER} ORDER BY b.timestamp, b.id, s.stepnr"
    );
    let mut tx = client.build_transaction().read_only(true).start().map_err(|e| DbError::Read(e.to_string()))?;
    let portal = tx
        .bind(sql.as_str(), &[&filter.since, &filter.until, &filter.projects, &filter.jobsets])
        .map_err(schema_or_read)?;
    loop {
        let rows = tx.query_portal(&portal, batch.max(1)).map_err(schema_or_read)?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let row = decode(row).map_err(DbError::Read)?;
            each(row).map_err(|e| DbError::Read(e.to_string()))?;
        }
    }
    tx.commit().map_err(|e| DbError::Read(message(&e)))
}

fn decode(row: &Row) -> Result<DbRow, String> {
    let int = |i: usize| -> Result<Option<i64>, String> {
        row.try_get::<_, Option<i64>>(i).map_err(|e| format!("column {i}: {e}"))
    };
    let text = |i: usize| -> Result<Option<String>, String> {
        row.try_get::<_, Option<String>>(i).map_err(|e| format!("column {i}: {e}"))
    };
    let small = |v: Option<i64>| v.map_or(0, |v| v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32);
    let build = BuildFacts {
        id: int(0)?.unwrap_or(0),
        timestamp: int(1)?.unwrap_or(0),
        project: text(2)?.unwrap_or_default(),
        jobset: text(3)?.unwrap_or_default(),
        job: text(4)?.unwrap_or_default(),
        drv_path: text(5)?.unwrap_or_default(),
        system: text(6)?.unwrap_or_default(),
        priority: small(int(7)?),
        global_priority: small(int(8)?),
        is_cached: int(9)?.unwrap_or(0) != 0,
        finished: int(10)?.unwrap_or(0) != 0,
    };
    let step = match int(11)? {
        None => None,
        Some(stepnr) => Some(StepFacts {
            stepnr: small(Some(stepnr)),
            kind: small(int(12)?),
            drv_path: text(13)?.unwrap_or_default(),
            busy: small(int(14)?),
            status: int(15)?.map(|v| small(Some(v))),
            start: int(16)?,
            stop: int(17)?,
            machine: text(18)?.unwrap_or_default(),
            system: text(19)?,
            propagated_from: int(20)?,
            overhead_ms: int(21)?,
        }),
    };
    Ok(DbRow { build, step })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn the_url_wins_and_the_environment_fills_the_rest() {
        let vars = [("PGHOST", "db.example"), ("PGPORT", "6543"), ("PGUSER", "hydra"), ("PGPASSWORD", "pw")];
        let c = settings(Some("postgres://alice@127.0.0.1/hydra"), env(&vars)).unwrap();
        assert_eq!(describe(&c), "alice@127.0.0.1:6543/hydra");
        assert_eq!(c.get_password(), Some(&b"pw"[..]));
        let c = settings(None, env(&vars)).unwrap();
        assert_eq!(describe(&c), "hydra@db.example:6543/hydra");
        let c = settings(None, env(&[("PGHOST", "/tmp/sock"), ("PGUSER", "u"), ("PGDATABASE", "d")])).unwrap();
        assert_eq!(describe(&c), "u@/tmp/sock:5432/d");
        assert!(settings(None, env(&[("PGPORT", "x")])).is_err());
        let c = settings(Some("postgres://alice@127.0.0.1:7000/hydra"), env(&vars)).unwrap();
        assert_eq!(describe(&c), "alice@127.0.0.1:7000/hydra");
        let c = settings(Some("host=h port=7001 user=u dbname=d"), env(&vars)).unwrap();
        assert_eq!(describe(&c), "u@h:7001/d");
        assert!(settings(Some("postgres://[bad"), env(&[])).is_err());
    }
}
