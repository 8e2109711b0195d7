//! The secrets file: pppd's chap-secrets format, so pptpd users keep their
//! file, as a [`Verifier`].
//!
//! # Format (pppd(8) "AUTHENTICATION", options.c `getword`, auth.c `scan_authfile`)
//!
//! ```text
//! # client      server   secret          addresses ...
//! alice         pptpd    "two words"     198.19.0.10
//! "bob smith"   *        s3cret          *
//! *             pptpd    guestpass       198.19.1.0/24 !198.19.1.1
//! mallory       *        whatever        -
//! ```
//!
//! - Words are separated by white space; `"…"` and `'…'` quote (also in the
//!   middle of a word); a backslash escapes the next character (`\n \r \t
//!   \s \a \b \f`, `\ddd` octal, `\xhh` hex, anything else stands for
//!   itself) and a backslash at the end of a line joins the next line; `#`
//!   outside quotes starts a comment.
//! - An entry starts with the first word of a line: client, server, secret,
//!   then the allowed addresses up to the end of the line. Words after `--`
//!   are pppd options for the peer and are ignored here.
//! - `*` as the client or the server matches any name. Of the entries that
//!   match (user, our server name), the most specific wins (an exact client
//!   beats an exact server beats neither); among equals the first one.
//! - Addresses: `a.b.c.d` or `a.b.c.d/len` allow, `!a.b.c.d[/len]` forbid,
//!   `*` allows any address, `-` ends the list (alone: no address at all).
//!   The first item that covers an address decides; an address no item
//!   covers is refused. The list is the user's [`AddressPolicy`]
//!   ([`Accepted::addresses`]), enforced as pppd does: the daemon assigns
//!   only an address it allows (the pool filtered, a static address
//!   checked) and the session closes rather than use another one.
//!   Loopback, multicast and class E addresses are never allowed.
//!   The first single address allowed is the user's static address. An
//!   entry that allows no address (`-`, or only `!` items) refuses the user
//!   with "no dial-in permission" (pppd: "no suitable secret"). An entry
//!   with no address column allows any address (pppd, with `auth`, would
//!   allow none).
//!
//! Unlike pppd, host and network names in address lists, the `/len+`
//! form and `@/file` indirect secrets are parse errors (no name service
//! and no extra file reads here), and a quoted word cannot span lines.
//! An MS-CHAP user name `DOMAIN\user` that matches no entry is looked up
//! again as `user`.
//!
//! Secrets never appear in errors, logs or `Debug` output.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use super::{
    Accepted, AddressItem, AddressPolicy, Credentials, MppeMaterial, Rejection, Verdict, Verifier,
    chap, mschap, mschapv2,
};
use crate::mppe::{
    Role,
    keys::{mschapv1_material, mschapv2_material},
};

/// Why the secrets file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The file does not exist (the daemon may start without it and warn).
    #[error("secrets file {} does not exist", path.display())]
    Missing { path: PathBuf },
    #[error("cannot read secrets file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A syntax error, with the file (or origin) and the 1-based line.
    #[error("{origin}:{line}: {message}")]
    Parse {
        origin: String,
        line: usize,
        message: String,
    },
}

/// A secret: octets that `Debug` never shows.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(octets: impl Into<Vec<u8>>) -> Secret {
        Secret(octets.into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret(s.as_bytes().to_vec())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(s.into_bytes())
    }
}

/// A client or server column.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Pattern {
    Any,
    Exact(Vec<u8>),
}

impl Pattern {
    fn from_word(word: Vec<u8>) -> Pattern {
        if word == b"*" {
            Pattern::Any
        } else {
            Pattern::Exact(word)
        }
    }

    /// `None` when it does not match; `Some(true)` for an exact match.
    fn matches(&self, name: &[u8]) -> Option<bool> {
        match self {
            Pattern::Any => Some(false),
            Pattern::Exact(w) => (w == name).then_some(true),
        }
    }
}

/// The allowed-address column of an entry (pppd auth.c
/// `set_allowed_addrs` and `some_ip_ok`): `-` ends the list, `*` allows
/// any address and ends it, no column at all allows any address.
fn parse_addresses(words: &[Vec<u8>]) -> Result<AddressPolicy, String> {
    if words.is_empty() || words.first().is_some_and(|w| w == b"--") {
        return Ok(AddressPolicy::any());
    }
    let mut items = Vec::new();
    for word in words {
        match word.as_slice() {
            b"--" | b"-" => break,
            b"*" => {
                items.push(AddressItem::allow(Ipv4Addr::UNSPECIFIED, 0));
                break;
            }
            _ => items.push(parse_address(word)?),
        }
    }
    Ok(AddressPolicy::list(items))
}

fn parse_address(word: &[u8]) -> Result<AddressItem, String> {
    let text = String::from_utf8_lossy(word);
    let (permit, rest) = match text.strip_prefix('!') {
        Some(rest) => (false, rest),
        None => (true, &*text),
    };
    let (addr, len) = match rest.split_once('/') {
        Some((addr, len)) => {
            let len: u8 = len
                .parse()
                .ok()
                .filter(|l| (1..=32).contains(l))
                .ok_or_else(|| format!("`{text}`: the prefix length must be 1 to 32"))?;
            (addr, len)
        }
        None => (rest, 32),
    };
    let addr: Ipv4Addr = addr
        .parse()
        .map_err(|_| format!("`{text}` is not an IPv4 address (host names are not supported)"))?;
    Ok(if permit {
        AddressItem::allow(addr, len)
    } else {
        AddressItem::deny(addr, len)
    })
}

/// One line of the file.
#[derive(Clone, Debug)]
struct Entry {
    client: Pattern,
    server: Pattern,
    secret: Secret,
    addresses: AddressPolicy,
}

/// The parsed file.
#[derive(Clone, Debug, Default)]
struct Table {
    entries: Vec<Entry>,
}

impl Table {
    /// pppd's `scan_authfile` choice for (client, server).
    fn lookup(&self, client: &[u8], server: &[u8]) -> Option<&Entry> {
        let mut best: Option<(u8, &Entry)> = None;
        for entry in &self.entries {
            let (Some(c), Some(s)) = (entry.client.matches(client), entry.server.matches(server))
            else {
                continue;
            };
            let score = u8::from(c) * 2 + u8::from(s);
            if best.is_none_or(|(b, _)| score > b) {
                best = Some((score, entry));
            }
        }
        best.map(|(_, e)| e)
    }

    fn parse(text: &[u8], origin: &str) -> Result<Table, SecretsError> {
        let error = |line, message: String| SecretsError::Parse {
            origin: origin.to_owned(),
            line,
            message,
        };
        let mut entries = Vec::new();
        for (line, words) in split_entries(text).map_err(|(line, m)| error(line, m))? {
            let mut words = words.into_iter();
            let (Some(client), Some(server), Some(secret)) =
                (words.next(), words.next(), words.next())
            else {
                return Err(error(
                    line,
                    "an entry needs a client, a server and a secret".into(),
                ));
            };
            if secret.starts_with(b"@/") {
                return Err(error(
                    line,
                    "indirect secrets (@/file) are not supported".into(),
                ));
            }
            let rest: Vec<Vec<u8>> = words.collect();
            let addresses = parse_addresses(&rest).map_err(|m| error(line, m))?;
            entries.push(Entry {
                client: Pattern::from_word(client),
                server: Pattern::from_word(server),
                secret: Secret(secret),
                addresses,
            });
        }
        Ok(Table { entries })
    }
}

/// The words of an entry and the line on which it starts.
type RawEntry = (usize, Vec<Vec<u8>>);

/// Splits the text into entries. Errors carry the line.
fn split_entries(text: &[u8]) -> Result<Vec<RawEntry>, (usize, String)> {
    let mut entries: Vec<RawEntry> = Vec::new();
    let mut line = 1;
    let mut at_line_start = true;
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        match c {
            b'\n' => {
                line += 1;
                at_line_start = true;
                i += 1;
            }
            b'#' => {
                while i < text.len() && text[i] != b'\n' {
                    i += 1;
                }
            }
            b'\\' if text.get(i + 1) == Some(&b'\n') => {
                line += 1;
                i += 2;
            }
            c if c.is_ascii_whitespace() => i += 1,
            _ => {
                let start_line = line;
                let (word, next, lines) = read_word(text, i).map_err(|m| (start_line, m))?;
                line += lines;
                i = next;
                if at_line_start || entries.is_empty() {
                    entries.push((start_line, Vec::new()));
                    at_line_start = false;
                }
                if let Some((_, words)) = entries.last_mut() {
                    words.push(word);
                }
            }
        }
    }
    Ok(entries)
}

/// Reads one word starting at `i`: returns it, the index after it and the
/// escaped newlines it swallowed.
fn read_word(text: &[u8], mut i: usize) -> Result<(Vec<u8>, usize, usize), String> {
    let mut word = Vec::new();
    let mut quote: Option<u8> = None;
    let mut lines = 0;
    while i < text.len() {
        let c = text[i];
        if c == b'\\' {
            let Some(&e) = text.get(i + 1) else {
                return Err("backslash at the end of the file".into());
            };
            i += 2;
            match e {
                b'\n' => lines += 1,
                b'a' => word.push(0x07),
                b'b' => word.push(0x08),
                b'f' => word.push(0x0c),
                b'n' => word.push(b'\n'),
                b'r' => word.push(b'\r'),
                b's' => word.push(b' '),
                b't' => word.push(b'\t'),
                b'0'..=b'7' => {
                    let mut value = u32::from(e - b'0');
                    let mut n = 1;
                    while n < 3 && i < text.len() && (b'0'..=b'7').contains(&text[i]) {
                        value = value * 8 + u32::from(text[i] - b'0');
                        i += 1;
                        n += 1;
                    }
                    word.push(value as u8);
                }
                b'x' => {
                    let mut value = 0u8;
                    let mut n = 0;
                    while n < 2 && i < text.len() && text[i].is_ascii_hexdigit() {
                        let d = text[i];
                        let v = if d.is_ascii_digit() {
                            d - b'0'
                        } else {
                            (d | 0x20) - b'a' + 10
                        };
                        value = value << 4 | v;
                        i += 1;
                        n += 1;
                    }
                    word.push(value);
                }
                other => word.push(other),
            }
            continue;
        }
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) if c == b'\n' => return Err("quoted word runs past the end of the line".into()),
            Some(_) => word.push(c),
            None if c == b'"' || c == b'\'' => quote = Some(c),
            None if c.is_ascii_whitespace() || c == b'#' => break,
            None => word.push(c),
        }
        i += 1;
    }
    if quote.is_some() {
        return Err("quoted word runs to the end of the file".into());
    }
    Ok((word, i, lines))
}

/// The secrets file as a [`Verifier`], for one server name (the name our
/// Challenge carries: `server.hostname`; pptpd setups use `pptpd`, or `*`).
///
/// [`SecretsFile::reload`] re-reads the file and swaps the table at once;
/// checks in progress finish with the table they started with.
pub struct SecretsFile {
    path: PathBuf,
    server_name: String,
    table: RwLock<Arc<Table>>,
}

impl fmt::Debug for SecretsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretsFile")
            .field("path", &self.path)
            .field("server_name", &self.server_name)
            .field("entries", &self.len())
            .finish()
    }
}

impl SecretsFile {
    /// Reads and parses the file. A missing file is [`SecretsError::Missing`];
    /// the daemon may warn and go on with [`SecretsFile::empty`].
    pub fn load(
        path: impl Into<PathBuf>,
        server_name: impl Into<String>,
    ) -> Result<SecretsFile, SecretsError> {
        let file = SecretsFile::empty(path, server_name);
        file.reload()?;
        Ok(file)
    }

    /// No entries yet: every check fails until [`SecretsFile::reload`]
    /// succeeds.
    pub fn empty(path: impl Into<PathBuf>, server_name: impl Into<String>) -> SecretsFile {
        SecretsFile {
            path: path.into(),
            server_name: server_name.into(),
            table: RwLock::new(Arc::new(Table::default())),
        }
    }

    /// Parses text (tests, or secrets from elsewhere); `origin` names it in
    /// errors and stands as its path.
    pub fn from_text(
        text: &[u8],
        origin: &str,
        server_name: impl Into<String>,
    ) -> Result<SecretsFile, SecretsError> {
        let table = Table::parse(text, origin)?;
        Ok(SecretsFile {
            path: PathBuf::from(origin),
            server_name: server_name.into(),
            table: RwLock::new(Arc::new(table)),
        })
    }

    /// Re-reads the file and swaps the table atomically; on error the old
    /// table stays. Returns the number of entries.
    pub fn reload(&self) -> Result<usize, SecretsError> {
        let text = std::fs::read(&self.path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                SecretsError::Missing {
                    path: self.path.clone(),
                }
            } else {
                SecretsError::Read {
                    path: self.path.clone(),
                    source,
                }
            }
        })?;
        let table = Table::parse(&text, &self.path.display().to_string())?;
        let n = table.entries.len();
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
        Ok(n)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.snapshot().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The address policy of the entry `user` would authenticate with.
    pub fn addresses(&self, user: &str) -> Option<AddressPolicy> {
        let table = self.snapshot();
        self.find(&table, user.as_bytes())
            .map(|e| e.addresses.clone())
    }

    fn snapshot(&self) -> Arc<Table> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn find<'t>(&self, table: &'t Table, user: &[u8]) -> Option<&'t Entry> {
        let server = self.server_name.as_bytes();
        table.lookup(user, server).or_else(|| {
            let bare = mschapv2::strip_domain(user);
            (bare.len() != user.len())
                .then(|| table.lookup(bare, server))
                .flatten()
        })
    }
}

/// What a secret proves about credentials.
struct Checked {
    ok: bool,
    authenticator_response: Option<[u8; 20]>,
    mppe: Option<MppeMaterial>,
}

/// Checks credentials against a secret, in constant time in the secret's
/// content.
fn check(credentials: &Credentials, secret: &[u8]) -> Checked {
    let plain = |ok| Checked {
        ok,
        authenticator_response: None,
        mppe: None,
    };
    match credentials {
        Credentials::Pap { password, .. } => {
            // Hash both so that the comparison does not leak the length.
            let a = Sha1::digest(password);
            let b = Sha1::digest(secret);
            plain(a.ct_eq(&b).into())
        }
        Credentials::ChapMd5 {
            identifier,
            challenge,
            response,
            ..
        } => plain(
            chap::response(*identifier, secret, challenge)
                .ct_eq(response)
                .into(),
        ),
        Credentials::MsChapV1 {
            challenge,
            lm_response,
            nt_response,
            use_nt_response,
            ..
        } => {
            let nt_hash = mschap::nt_password_hash(secret);
            let lm_hash = mschap::lm_password_hash(secret);
            let ok = if *use_nt_response {
                mschap::challenge_response(challenge, &nt_hash).ct_eq(nt_response)
            } else {
                mschap::challenge_response(challenge, &lm_hash).ct_eq(lm_response)
            };
            Checked {
                ok: ok.into(),
                authenticator_response: None,
                mppe: Some(mschapv1_material(
                    &lm_hash,
                    &mschap::hash_nt_password_hash(&nt_hash),
                    challenge,
                )),
            }
        }
        Credentials::MsChapV2 {
            user,
            authenticator_challenge,
            peer_challenge,
            nt_response,
        } => {
            let hash = mschap::nt_password_hash(secret);
            let hash_hash = mschap::hash_nt_password_hash(&hash);
            let expected = mschapv2::generate_nt_response_from_hash(
                authenticator_challenge,
                peer_challenge,
                user.as_bytes(),
                &hash,
            );
            Checked {
                ok: expected.ct_eq(nt_response).into(),
                authenticator_response: Some(
                    mschapv2::generate_authenticator_response_from_hash_hash(
                        &hash_hash,
                        nt_response,
                        peer_challenge,
                        authenticator_challenge,
                        user.as_bytes(),
                    ),
                ),
                mppe: Some(mschapv2_material(&hash_hash, nt_response, Role::Server)),
            }
        }
    }
}

impl Verifier for SecretsFile {
    /// `source` plays no part: the file has no per-source restrictions
    /// (its address column is about the tunnel address the peer may use).
    fn verify(&self, _source: IpAddr, credentials: &Credentials) -> Verdict {
        let table = self.snapshot();
        let Some(entry) = self.find(&table, credentials.user().as_bytes()) else {
            // Do the same work for an unknown user as for a known one.
            let _ = check(credentials, b"");
            return Verdict::Reject(Rejection::BadCredentials);
        };
        let checked = check(credentials, entry.secret.as_bytes());
        if !checked.ok {
            return Verdict::Reject(Rejection::BadCredentials);
        }
        if !entry.addresses.allows_some() {
            return Verdict::Reject(Rejection::NoDialinPermission);
        }
        Verdict::Accept(Accepted {
            user: credentials.user().to_owned(),
            static_address: entry.addresses.static_address(),
            addresses: entry.addresses.clone(),
            authenticator_response: checked.authenticator_response,
            mppe: checked.mppe,
            session: Default::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

    fn file(text: &str, server: &str) -> SecretsFile {
        SecretsFile::from_text(text.as_bytes(), "chap-secrets", server).unwrap()
    }

    fn pap(user: &str, password: &str) -> Credentials {
        Credentials::Pap {
            user: user.into(),
            password: password.as_bytes().to_vec(),
        }
    }

    fn accepted(verdict: Verdict) -> Accepted {
        match verdict {
            Verdict::Accept(a) => a,
            Verdict::Reject(r) => panic!("rejected: {r:?}"),
        }
    }

    #[test]
    fn pptpd_style_file() {
        let f = file(
            "# Secrets for authentication using CHAP\n\
             # client\tserver\tsecret\t\t\tIP addresses\n\
             alice\tpptpd\tsecret1\t198.19.0.10\n\
             bob pptpd \"two words\" *\n\
             'carol x' * c\\sd 198.19.0.0/24\n",
            "pptpd",
        );
        assert_eq!(f.len(), 3);
        let a = accepted(f.verify(SOURCE, &pap("alice", "secret1")));
        assert_eq!(a.user, "alice");
        assert_eq!(a.static_address, Some(Ipv4Addr::new(198, 19, 0, 10)));
        assert_eq!((a.authenticator_response, a.mppe), (None, None));
        let b = accepted(f.verify(SOURCE, &pap("bob", "two words")));
        assert_eq!(b.static_address, None);
        let c = accepted(f.verify(SOURCE, &pap("carol x", "c d")));
        assert_eq!(c.static_address, None);
        assert_eq!(
            f.verify(SOURCE, &pap("alice", "secret2")),
            Verdict::Reject(Rejection::BadCredentials)
        );
        assert_eq!(
            f.verify(SOURCE, &pap("nobody", "secret1")),
            Verdict::Reject(Rejection::BadCredentials)
        );
        // Another server name: alice's entry no longer matches.
        let other = file("alice pptpd secret1 *\n", "pptp-xdp");
        assert_eq!(
            other.verify(SOURCE, &pap("alice", "secret1")),
            Verdict::Reject(Rejection::BadCredentials)
        );
    }

    #[test]
    fn most_specific_entry_wins_then_the_first() {
        let f = file(
            "*     *      any\n\
             alice *      client-only\n\
             *     srv    server-only\n\
             alice srv    both\n\
             alice srv    both-later\n",
            "srv",
        );
        assert!(matches!(
            f.verify(SOURCE, &pap("alice", "both")),
            Verdict::Accept(_)
        ));
        assert!(matches!(
            f.verify(SOURCE, &pap("alice", "both-later")),
            Verdict::Reject(_)
        ));
        assert!(matches!(
            f.verify(SOURCE, &pap("bob", "server-only")),
            Verdict::Accept(_)
        ));
        let f = file("*  *  any\nalice * client-only\n* srv server-only\n", "srv");
        assert!(matches!(
            f.verify(SOURCE, &pap("alice", "client-only")),
            Verdict::Accept(_)
        ));
        assert!(matches!(
            f.verify(SOURCE, &pap("zed", "any")),
            Verdict::Reject(_)
        ));
        assert!(matches!(
            f.verify(SOURCE, &pap("zed", "server-only")),
            Verdict::Accept(_)
        ));
    }

    #[test]
    fn address_lists() {
        let f = file(
            "a * p 198.19.0.0/24 !198.19.0.1 198.19.0.7\n\
             b * p -\n\
             c * p !198.19.0.0/16\n\
             d * p * 198.19.0.9\n\
             e * p 198.19.0.5 -- mtu 1400\n\
             f * p\n",
            "s",
        );
        let a = f.addresses("a").unwrap();
        assert!(
            a.allows("198.19.0.1".parse().unwrap()),
            "the first item that covers it decides"
        );
        assert!(!a.allows("198.19.1.1".parse().unwrap()));
        assert_eq!(a.static_address(), Some(Ipv4Addr::new(198, 19, 0, 7)));
        for user in ["b", "c"] {
            assert_eq!(
                f.verify(SOURCE, &pap(user, "p")),
                Verdict::Reject(Rejection::NoDialinPermission),
                "{user}"
            );
            // A wrong password is still a wrong password.
            assert_eq!(
                f.verify(SOURCE, &pap(user, "x")),
                Verdict::Reject(Rejection::BadCredentials)
            );
        }
        let d = f.addresses("d").unwrap();
        assert!(d.allows("203.0.113.9".parse().unwrap()));
        assert_eq!(d.static_address(), None, "`*` ends the list");
        assert_eq!(
            accepted(f.verify(SOURCE, &pap("e", "p"))).static_address,
            Some(Ipv4Addr::new(198, 19, 0, 5))
        );
        let none = f.addresses("f").unwrap();
        assert!(none.allows_some() && none.allows("203.0.113.1".parse().unwrap()));
    }

    #[test]
    fn the_address_column_is_enforced_through_the_verdict() {
        let f = file(
            "dave  * pw !198.19.0.1 198.19.0.0/30\n\
             dave2 * pw 198.19.0.0/30 !198.19.0.1\n\
             erin  * pw\n\
             frank * pw !198.19.0.9 198.19.0.9 198.19.0.12 198.19.1.0/24\n\
             gus   * pw 127.0.0.1 224.0.0.1 198.19.0.20\n",
            "s",
        );
        let pool: Vec<Ipv4Addr> = (0..=255).map(|i| Ipv4Addr::new(198, 19, 0, i)).collect();
        let usable = |user: &str| {
            let a = accepted(f.verify(SOURCE, &pap(user, "pw")));
            let allowed: Vec<Ipv4Addr> = pool
                .iter()
                .copied()
                .filter(|x| a.addresses.allows(*x))
                .collect();
            (a.static_address, allowed)
        };
        let ip = |last| Ipv4Addr::new(198, 19, 0, last);
        // pppd: the exclusion first, then the network.
        assert_eq!(usable("dave"), (None, vec![ip(0), ip(2), ip(3)]));
        // pppd's ip_addr_check: the first item that covers an address
        // decides, so an exclusion after its network excludes nothing.
        assert_eq!(usable("dave2"), (None, vec![ip(0), ip(1), ip(2), ip(3)]));
        let (static_address, allowed) = usable("erin");
        assert_eq!(
            (static_address, allowed.len()),
            (None, 256),
            "no column: any"
        );
        // A host that an earlier `!` forbids is not the static address.
        let (static_address, allowed) = usable("frank");
        assert_eq!(static_address, Some(ip(12)));
        assert_eq!(allowed, [ip(12)]);
        let frank = f.addresses("frank").unwrap();
        assert!(frank.allows(Ipv4Addr::new(198, 19, 1, 200)));
        assert!(!frank.allows(Ipv4Addr::new(198, 19, 2, 1)));
        // Loopback and multicast are never allowed, even when listed.
        let gus = f.addresses("gus").unwrap();
        assert!(!gus.allows(Ipv4Addr::LOCALHOST));
        assert!(!gus.allows(Ipv4Addr::new(224, 0, 0, 1)));
        assert_eq!(usable("gus").0, Some(ip(20)));
    }

    #[test]
    fn quoting_escapes_comments_and_continuations() {
        let f = file(
            "  # only a comment\n\
             \n\
             al\"i ce\"x * 'p#1' # trailing comment\n\
             b\\x41c * \\101\\t\\\\ \n\
             c \\\n  * p2\n\
             d * \"\"\n",
            "s",
        );
        assert!(matches!(
            f.verify(SOURCE, &pap("ali cex", "p#1")),
            Verdict::Accept(_)
        ));
        assert!(matches!(
            f.verify(SOURCE, &pap("bAc", "A\t\\")),
            Verdict::Accept(_)
        ));
        assert!(matches!(
            f.verify(SOURCE, &pap("c", "p2")),
            Verdict::Accept(_)
        ));
        assert!(matches!(
            f.verify(SOURCE, &pap("d", "")),
            Verdict::Accept(_)
        ));
        assert_eq!(f.len(), 4);
    }

    #[test]
    fn parse_errors_name_the_file_and_line() {
        let cases = [
            ("a * p\nb *\n", 2, "needs a client"),
            ("a * p\n\nb * \"open\n", 3, "quoted"),
            ("a * p 198.19.0.300\n", 1, "not an IPv4 address"),
            ("a * p host.example\n", 1, "host names"),
            ("a * p 10.0.0.0/33\n", 1, "prefix length"),
            ("a * p\n# c\nz * @/etc/ppp/pw\n", 3, "indirect"),
            ("a * 'unterminated", 1, "end of the file"),
        ];
        for (text, line, needle) in cases {
            let err =
                SecretsFile::from_text(text.as_bytes(), "/etc/ppp/chap-secrets", "s").unwrap_err();
            let shown = err.to_string();
            assert!(
                shown.starts_with(&format!("/etc/ppp/chap-secrets:{line}: "))
                    && shown.contains(needle),
                "{text:?}: {shown}"
            );
        }
        // "x" and "y" alone are incomplete entries too; the first one is reported.
        let err = SecretsFile::from_text(b"x\n", "f", "s").unwrap_err();
        assert!(err.to_string().starts_with("f:1:"));
    }

    #[test]
    fn secrets_never_show() {
        let f = file("alice * hunter2 *\n", "s");
        assert!(!format!("{f:?}").contains("hunter2"));
        assert!(!format!("{:?}", f.snapshot()).contains("hunter2"));
        let err = SecretsFile::from_text(b"alice * hunter2 nothost\n", "f", "s").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn chap_md5_and_ms_chap_credentials() {
        let f = file("User * clientPass 198.19.0.3\n", "s");
        let challenge = vec![7u8; 16];
        let md5 = Credentials::ChapMd5 {
            user: "User".into(),
            identifier: 9,
            challenge: challenge.clone(),
            response: chap::response(9, b"clientPass", &challenge),
        };
        assert!(matches!(f.verify(SOURCE, &md5), Verdict::Accept(_)));
        let wrong = Credentials::ChapMd5 {
            user: "User".into(),
            identifier: 10,
            challenge,
            response: chap::response(9, b"clientPass", &[7u8; 16]),
        };
        assert_eq!(
            f.verify(SOURCE, &wrong),
            Verdict::Reject(Rejection::BadCredentials)
        );

        // MS-CHAPv2 with the RFC 2759 section 9.2 values.
        let v2 = Credentials::MsChapV2 {
            user: "User".into(),
            authenticator_challenge: [
                0x5B, 0x5D, 0x7C, 0x7D, 0x7B, 0x3F, 0x2F, 0x3E, 0x3C, 0x2C, 0x60, 0x21, 0x32, 0x26,
                0x26, 0x28,
            ],
            peer_challenge: [
                0x21, 0x40, 0x23, 0x24, 0x25, 0x5E, 0x26, 0x2A, 0x28, 0x29, 0x5F, 0x2B, 0x3A, 0x33,
                0x7C, 0x7E,
            ],
            nt_response: [
                0x82, 0x30, 0x9E, 0xCD, 0x8D, 0x70, 0x8B, 0x5E, 0xA0, 0x8F, 0xAA, 0x39, 0x81, 0xCD,
                0x83, 0x54, 0x42, 0x33, 0x11, 0x4A, 0x3D, 0x85, 0xD6, 0xDF,
            ],
        };
        let a = accepted(f.verify(SOURCE, &v2));
        assert_eq!(
            a.authenticator_response,
            Some([
                0x40, 0x7A, 0x55, 0x89, 0x11, 0x5F, 0xD0, 0xD6, 0x20, 0x9F, 0x51, 0x0F, 0xE9, 0xC0,
                0x45, 0x66, 0x93, 0x2C, 0xDA, 0x56
            ])
        );
        assert_eq!(a.static_address, Some(Ipv4Addr::new(198, 19, 0, 3)));
        let Some(MppeMaterial::V2 {
            master_send_key, ..
        }) = a.mppe
        else {
            panic!("no MS-CHAPv2 key material");
        };
        // RFC 3079 section 3.5.3: the server's send start key.
        assert_eq!(master_send_key[..4], [0x8B, 0x7C, 0xDC, 0x14]);
        // The domain prefix is looked up without it and not hashed.
        let Credentials::MsChapV2 {
            authenticator_challenge,
            peer_challenge,
            nt_response,
            ..
        } = v2
        else {
            unreachable!()
        };
        let with_domain = Credentials::MsChapV2 {
            user: "CORP\\User".into(),
            authenticator_challenge,
            peer_challenge,
            nt_response,
        };
        assert_eq!(accepted(f.verify(SOURCE, &with_domain)).user, "CORP\\User");

        // MS-CHAPv1 with the RFC 2433 appendix B.2 values.
        let f = file("u * MyPw *\n", "s");
        let challenge = [0x10, 0x2D, 0xB5, 0xDF, 0x08, 0x5D, 0x30, 0x41];
        let v1 = |use_nt: bool, lm: [u8; 24], nt: [u8; 24]| Credentials::MsChapV1 {
            user: "u".into(),
            challenge,
            lm_response: lm,
            nt_response: nt,
            use_nt_response: use_nt,
        };
        let nt = mschap::nt_challenge_response(&challenge, b"MyPw");
        let lm = mschap::lm_challenge_response(&challenge, b"MyPw");
        let a = accepted(f.verify(SOURCE, &v1(true, [0; 24], nt)));
        assert!(matches!(a.mppe, Some(MppeMaterial::V1 { challenge: c, .. }) if c == challenge));
        assert!(matches!(
            f.verify(SOURCE, &v1(false, lm, [0; 24])),
            Verdict::Accept(_)
        ));
        assert!(matches!(
            f.verify(SOURCE, &v1(false, [0; 24], nt)),
            Verdict::Reject(_)
        ));
        assert!(matches!(
            f.verify(SOURCE, &v1(true, lm, [0; 24])),
            Verdict::Reject(_)
        ));
    }

    #[test]
    fn load_reload_and_missing() {
        let dir = std::env::temp_dir().join(format!("pptp-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("chap-secrets");
        let _ = std::fs::remove_file(&path);
        assert!(matches!(
            SecretsFile::load(&path, "s"),
            Err(SecretsError::Missing { .. })
        ));
        let f = SecretsFile::empty(&path, "s");
        assert!(f.is_empty());
        assert!(matches!(
            f.verify(SOURCE, &pap("a", "1")),
            Verdict::Reject(_)
        ));
        std::fs::write(&path, "a * 1 *\n").unwrap();
        assert_eq!(f.reload().unwrap(), 1);
        assert!(matches!(
            f.verify(SOURCE, &pap("a", "1")),
            Verdict::Accept(_)
        ));
        // A broken file keeps the old table.
        std::fs::write(&path, "a * 2 *\nb *\n").unwrap();
        let err = f.reload().unwrap_err();
        assert!(err.to_string().contains(":2:"), "{err}");
        assert!(matches!(
            f.verify(SOURCE, &pap("a", "1")),
            Verdict::Accept(_)
        ));
        std::fs::write(&path, "a * 2 *\n").unwrap();
        f.reload().unwrap();
        assert!(matches!(
            f.verify(SOURCE, &pap("a", "2")),
            Verdict::Accept(_)
        ));
        assert!(matches!(
            f.verify(SOURCE, &pap("a", "1")),
            Verdict::Reject(_)
        ));
        let loaded = SecretsFile::load(&path, "s").unwrap();
        assert_eq!((loaded.len(), loaded.path()), (1, path.as_path()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
