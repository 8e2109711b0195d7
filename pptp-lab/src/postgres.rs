//! A real PostgreSQL (Debian's `postgresql`) for the tests: [`Postgres`]
//! runs `initdb` into a scratch folder of its own, starts `postgres` inside
//! a network namespace on 127.0.0.1 there (and a Unix socket in the
//! folder), waits until it accepts connections, creates one database and
//! kills the server and removes the folder on drop (also when a test
//! panics).
//!
//! PostgreSQL refuses to run as root, so `initdb`, `postgres` and `psql`
//! run as Debian's `postgres` user (`setpriv`, which execs in place: the
//! child we hold is the postmaster itself, so killing it ends the server).
//! Authentication is `trust` for the superuser `postgres`: the server is
//! reachable only from inside its namespace.
//!
//! [`Postgres::load_ippool_schema`] loads FreeRADIUS's own `radippool`
//! schema (Debian's freeradius-postgresql ships it) and
//! [`Postgres::add_pool`] fills a pool with addresses, for the sqlippool
//! tests ([`crate::radius_lab::SqlIpPool`]).
//!
//! Missing binaries fail with the package names and `cargo xtask setup` as
//! the fix; nothing is skipped.

use std::{
    net::{Ipv4Addr, SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use pptp_netns::{self as netns, Netns, NetnsError};

/// The Debian user PostgreSQL runs as.
const OS_USER: &str = "postgres";
/// The database superuser (`trust` authentication).
pub const DB_USER: &str = "postgres";
/// FreeRADIUS's PostgreSQL schema of the `radippool` table (Debian's
/// freeradius-config, installed with freeradius).
pub const IPPOOL_SCHEMA: &str = "/etc/freeradius/3.0/mods-config/sql/ippool/postgresql/schema.sql";

/// Why PostgreSQL could not be set up or asked.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error(
        "`{program}` not found: install the Debian package {package} (`cargo xtask setup` does)"
    )]
    Missing {
        program: &'static str,
        package: &'static str,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("PostgreSQL did not come up ({reason}); its log:\n{log}")]
    NotReady { reason: String, log: String },
    #[error("{command} failed ({status}):\n{stderr}")]
    Failed {
        command: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> PostgresError {
    let context = context.into();
    move |source| PostgresError::Io { context, source }
}

/// The newest `/usr/lib/postgresql/<version>/bin` that has `initdb` and
/// `postgres` (Debian keeps the server binaries there, off PATH).
fn server_bin_dir() -> Result<PathBuf, PostgresError> {
    let missing = PostgresError::Missing {
        program: "initdb",
        package: "postgresql",
    };
    let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") else {
        return Err(missing);
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("postgres").is_file())
                .then_some((version, bin))
        })
        .max()
        .map(|(_, bin)| bin)
        .ok_or(missing)
}

/// A running PostgreSQL with one database, killed (and its folder removed
/// unless `PPTP_LAB_KEEP` is set) on drop.
pub struct Postgres {
    child: Child,
    dir: PathBuf,
    bin: PathBuf,
    netns: String,
    port: u16,
    database: String,
}

impl Postgres {
    /// Creates a cluster, starts it in `ns` on a free port of 127.0.0.1
    /// there and creates `database`; returns once it accepts connections.
    pub fn start(ns: &Netns, database: &str) -> Result<Self, PostgresError> {
        let bin = server_bin_dir()?;
        let dir = std::env::temp_dir().join(format!("pptp-{}", netns::unique_name("pg")));
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let owner = Command::new("chown")
            .args([&format!("{OS_USER}:{OS_USER}"), &dir.display().to_string()])
            .output()
            .map_err(io("running chown"))?;
        if !owner.status.success() {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(PostgresError::Failed {
                command: format!("chown {OS_USER} {}", dir.display()),
                status: owner.status,
                stderr: format!(
                    "{} (is the Debian package postgresql installed? `cargo xtask setup`)",
                    String::from_utf8_lossy(&owner.stderr)
                ),
            });
        }
        let data = dir.join("data");
        let initdb = as_postgres(Command::new("setpriv"), &bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", DB_USER, "--auth=trust", "-E", "UTF8", "--no-sync"])
            .stdin(Stdio::null())
            .output();
        let initdb = match initdb {
            Ok(out) => out,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(PostgresError::Io {
                    context: "running initdb (setpriv, from util-linux)".into(),
                    source: e,
                });
            }
        };
        if !initdb.status.success() {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(PostgresError::Failed {
                command: "initdb".into(),
                status: initdb.status,
                stderr: String::from_utf8_lossy(&initdb.stderr).into_owned(),
            });
        }
        let port = free_tcp_port(ns)?;
        let log = dir.join("postgres.log");
        let out = std::fs::File::create(&log).map_err(io(format!("creating {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(io(format!("opening {}", log.display())))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns.name(), "setpriv"]);
        let child = as_postgres(cmd, &bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(&dir)
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            // A throwaway database: no durability needed.
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=50"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(io("starting postgres"))?;
        let mut server = Postgres {
            child,
            dir,
            bin,
            netns: ns.name().to_owned(),
            port,
            database: "postgres".into(),
        };
        server.wait_ready(Duration::from_secs(30))?;
        server.execute(&format!("CREATE DATABASE \"{database}\""))?;
        server.database = database.to_owned();
        Ok(server)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), PostgresError> {
        let log = self.dir.join("postgres.log");
        crate::lab::wait_for_log(
            &mut self.child,
            &log,
            "database system is ready to accept connections",
            timeout,
        )
        .map_err(|reason| PostgresError::NotReady {
            reason,
            log: self.log(),
        })
    }

    /// Where it accepts connections (127.0.0.1 of its namespace).
    pub fn address(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The database [`Postgres::start`] created.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The scratch folder (the cluster, its Unix socket and its log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read(self.dir.join("postgres.log"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Runs `psql` in the namespace on the database, stopping at the first
    /// error, with `args` (`-c SQL`, `-f FILE`…); returns its output.
    fn psql(&self, args: &[&str]) -> Result<String, PostgresError> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns]);
        let program = self.bin.join("psql");
        let program = if program.is_file() {
            program
        } else {
            PathBuf::from("psql")
        };
        let out = cmd
            .arg(&program)
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .args(["-p", &self.port.to_string(), "-U", DB_USER])
            .args(["-d", &self.database])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(io("running psql (Debian package postgresql-client)"))?;
        if !out.status.success() {
            return Err(PostgresError::Failed {
                command: format!("psql {args:?}"),
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `sql` (one or more statements) on the database.
    pub fn execute(&self, sql: &str) -> Result<(), PostgresError> {
        self.psql(&["-c", sql]).map(drop)
    }

    /// Runs the query `sql` and returns its rows, each a list of column
    /// values as text (NULL as the empty string).
    pub fn query(&self, sql: &str) -> Result<Vec<Vec<String>>, PostgresError> {
        let out = self.psql(&["-A", "-t", "-F", "\t", "-c", sql])?;
        Ok(out
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split('\t').map(str::to_owned).collect())
            .collect())
    }

    /// Runs the SQL file at `path` on the database.
    pub fn load_file(&self, path: &Path) -> Result<(), PostgresError> {
        if !path.is_file() {
            return Err(PostgresError::Io {
                context: format!("reading {}", path.display()),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        self.psql(&["-f", &path.display().to_string()]).map(drop)
    }

    /// Creates FreeRADIUS's `radippool` table from its own schema
    /// ([`IPPOOL_SCHEMA`], Debian's freeradius-config).
    pub fn load_ippool_schema(&self) -> Result<(), PostgresError> {
        let schema = Path::new(IPPOOL_SCHEMA);
        if !schema.is_file() {
            return Err(PostgresError::Missing {
                program: IPPOOL_SCHEMA,
                package: "freeradius-postgresql (with freeradius-config)",
            });
        }
        self.load_file(schema)
    }

    /// Adds `count` free addresses from `first` on to pool `pool` of the
    /// `radippool` table. They expire a second before now: sqlippool
    /// hands out rows whose `expiry_time < 'now'::timestamp(0)`, and the
    /// schema's default (`NOW()`, rounded to the second) would keep a new
    /// row unavailable for up to a second.
    pub fn add_pool(&self, pool: &str, first: Ipv4Addr, count: u32) -> Result<(), PostgresError> {
        if count == 0 {
            return Ok(());
        }
        let first = u32::from(first);
        let last = Ipv4Addr::from(first.saturating_add(count - 1));
        let first = Ipv4Addr::from(first);
        self.execute(&format!(
            "INSERT INTO radippool (pool_name, framedipaddress, expiry_time) \
             SELECT '{}', '{first}'::inet + n, \
             'now'::timestamp(0) - '1 second'::interval \
             FROM generate_series(0, '{last}'::inet - '{first}'::inet) AS n",
            pool.replace('\'', "''")
        ))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGQUIT: immediate shutdown, the postmaster ends its children.
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGQUIT) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("PPTP_LAB_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `setpriv … program` as the `postgres` user (setpriv execs in place).
fn as_postgres(mut setpriv: Command, program: &Path) -> Command {
    setpriv
        .args([
            &format!("--reuid={OS_USER}"),
            &format!("--regid={OS_USER}"),
            "--init-groups",
            "--",
        ])
        .arg(program);
    setpriv
}

/// A TCP port of 127.0.0.1 in `ns` where nothing listens.
fn free_tcp_port(ns: &Netns) -> Result<u16, PostgresError> {
    let port = ns
        .run(|| -> std::io::Result<u16> {
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
                .local_addr()
                .map(|a| a.port())
        })?
        .map_err(io("finding a free TCP port"))?;
    Ok(port)
}
