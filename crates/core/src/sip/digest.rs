//! HTTP Digest authentication for SIP (RFC 2617, RFC 3261 22, RFC 7616/8760 SHA-256).
//!
//! Challenge parameters are read by a small auth-param tokenizer rather than rsip's typed
//! header, which rejects `algorithm=SHA-256` (the RFC 8760 spelling) and `qop="auth,auth-int"`.
//! Responses are written by hand for the same reason: `qop=auth` unquoted and `nc` as eight hex
//! digits, as RFC 2617 requires (rsip quotes qop and keeps nc in a u8).

use md5::Md5;
use sha2::{Digest, Sha256};

/// A digest algorithm we can answer, weakest first (so `max` picks the strongest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Algorithm {
    /// MD5 (RFC 2617).
    Md5,
    /// MD5-sess.
    Md5Sess,
    /// SHA-256 (RFC 7616, RFC 8760).
    Sha256,
    /// SHA-256-sess.
    Sha256Sess,
}

impl Algorithm {
    fn parse(s: &str) -> Option<Algorithm> {
        match s.to_ascii_uppercase().as_str() {
            "MD5" => Some(Algorithm::Md5),
            "MD5-SESS" => Some(Algorithm::Md5Sess),
            "SHA-256" | "SHA256" => Some(Algorithm::Sha256),
            "SHA-256-SESS" | "SHA256-SESS" => Some(Algorithm::Sha256Sess),
            _ => None,
        }
    }

    /// The name written in the Authorization header.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    fn hash(self, data: &str) -> String {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => hex(&Md5::digest(data.as_bytes())),
            Algorithm::Sha256 | Algorithm::Sha256Sess => hex(&Sha256::digest(data.as_bytes())),
        }
    }

    fn is_sess(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a challenge cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    /// Not a Digest challenge.
    #[error("authentication scheme is not Digest")]
    NotDigest,
    /// A required parameter is missing.
    #[error("digest challenge without {0}")]
    Missing(&'static str),
    /// The algorithm is not one we implement.
    #[error("digest algorithm {0:?} is not supported")]
    UnknownAlgorithm(String),
    /// The parameter list is malformed.
    #[error("malformed digest challenge")]
    Malformed,
}

/// One parsed `WWW-Authenticate` / `Proxy-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Protection realm.
    pub realm: String,
    /// Server nonce.
    pub nonce: String,
    /// Opaque value to echo.
    pub opaque: Option<String>,
    /// Hash algorithm.
    pub algorithm: Algorithm,
    /// Whether the server offered `qop=auth` (we never use auth-int).
    pub qop_auth: bool,
    /// `stale=true`: the nonce expired but the credentials were right.
    pub stale: bool,
}

impl Challenge {
    /// Parses the value of a challenge header.
    pub fn parse(value: &str) -> Result<Challenge, ChallengeError> {
        let value = value.trim();
        let (scheme, rest) = value.split_once(|c: char| c.is_ascii_whitespace()).unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("digest") {
            return Err(ChallengeError::NotDigest);
        }
        let params = auth_params(rest).ok_or(ChallengeError::Malformed)?;
        let get = |name: &str| params.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
        let algorithm = match get("algorithm") {
            None => Algorithm::Md5,
            Some(a) => Algorithm::parse(&a).ok_or(ChallengeError::UnknownAlgorithm(a))?,
        };
        let qop = get("qop");
        let qop_auth = qop.as_deref().is_some_and(|q| q.split(',').any(|t| t.trim().eq_ignore_ascii_case("auth")));
        if qop.is_some() && !qop_auth {
            return Err(ChallengeError::Missing("qop=auth"));
        }
        Ok(Challenge {
            realm: get("realm").ok_or(ChallengeError::Missing("realm"))?,
            nonce: get("nonce").filter(|n| !n.is_empty()).ok_or(ChallengeError::Missing("nonce"))?,
            opaque: get("opaque"),
            algorithm,
            qop_auth,
            stale: get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// Computes the header value that answers this challenge.
    pub fn answer(&self, a: &Answer<'_>) -> String {
        let ha1_base = self.algorithm.hash(&format!("{}:{}:{}", a.username, self.realm, a.password));
        let ha1 = if self.algorithm.is_sess() {
            self.algorithm.hash(&format!("{ha1_base}:{}:{}", self.nonce, a.cnonce))
        } else {
            ha1_base
        };
        let ha2 = self.algorithm.hash(&format!("{}:{}", a.method, a.uri));
        let nc = format!("{:08x}", a.nc);
        let response = if self.qop_auth {
            self.algorithm.hash(&format!("{ha1}:{}:{nc}:{}:auth:{ha2}", self.nonce, a.cnonce))
        } else {
            self.algorithm.hash(&format!("{ha1}:{}:{ha2}", self.nonce))
        };
        let mut out = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{response}\", algorithm={}",
            quote(a.username),
            quote(&self.realm),
            quote(&self.nonce),
            a.uri,
            self.algorithm.name()
        );
        if self.qop_auth || self.algorithm.is_sess() {
            out.push_str(&format!(", cnonce=\"{}\"", quote(a.cnonce)));
        }
        if self.qop_auth {
            out.push_str(&format!(", qop=auth, nc={nc}"));
        }
        if let Some(o) = &self.opaque {
            out.push_str(&format!(", opaque=\"{}\"", quote(o)));
        }
        out
    }
}

/// The request-side inputs of a digest response.
pub struct Answer<'a> {
    /// Auth user.
    pub username: &'a str,
    /// Password.
    pub password: &'a str,
    /// SIP method (`REGISTER`).
    pub method: &'a str,
    /// Request-URI as sent.
    pub uri: &'a str,
    /// Nonce count for this nonce (1 for the first use).
    pub nc: u32,
    /// Client nonce.
    pub cnonce: &'a str,
}

/// Picks the strongest challenge we can answer; returns the parse error of the last otherwise.
pub fn strongest<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Challenge, ChallengeError> {
    let mut best: Option<Challenge> = None;
    let mut last_err = ChallengeError::Missing("challenge");
    for v in values {
        match Challenge::parse(v) {
            Ok(c) if best.as_ref().is_none_or(|b| c.algorithm > b.algorithm) => best = Some(c),
            Ok(_) => {}
            Err(e) => last_err = e,
        }
    }
    best.ok_or(last_err)
}

fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Splits `a=b, c="d, e"` into pairs; None when malformed.
fn auth_params(s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_ascii_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let name: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && !c.is_ascii_whitespace())).collect();
        while chars.next_if(|c| c.is_ascii_whitespace()).is_some() {}
        if chars.next() != Some('=') || name.is_empty() {
            return None;
        }
        while chars.next_if(|c| c.is_ascii_whitespace()).is_some() {}
        let value = if chars.next_if_eq(&'"').is_some() {
            let mut v = String::new();
            loop {
                match chars.next()? {
                    '"' => break v,
                    '\\' => v.push(chars.next()?),
                    c => v.push(c),
                }
            }
        } else {
            std::iter::from_fn(|| chars.next_if(|c| *c != ',' && !c.is_ascii_whitespace())).collect()
        };
        out.push((name, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field<'a>(header: &'a str, name: &str) -> &'a str {
        let start = header.find(&format!("{name}=")).unwrap() + name.len() + 1;
        let rest = &header[start..];
        let rest = rest
            .strip_prefix('"')
            .map(|r| &r[..r.find('"').unwrap()])
            .unwrap_or_else(|| rest.split(',').next().unwrap());
        rest
    }

    #[test]
    fn rfc2617_md5_vector() {
        // RFC 2617 section 3.5.
        let c = Challenge::parse(r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#).unwrap();
        let h = c.answer(&Answer {
            username: "Mufasa",
            password: "Circle Of Life",
            method: "GET",
            uri: "/dir/index.html",
            nc: 1,
            cnonce: "0a4f113b",
        });
        assert_eq!(field(&h, "response"), "6629fae49393a05397450978507c4ef1");
        assert!(
            h.contains(", qop=auth, nc=00000001") && h.contains(r#"opaque="5ccc069c403ebaf9f0171e9517f40e41""#),
            "{h}"
        );
    }

    #[test]
    fn rfc7616_sha256_and_md5_vectors() {
        // RFC 7616 section 3.9.1, answered with SHA-256 and with MD5.
        let base = r#"realm="http-auth@example.org", qop="auth, auth-int", nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
        let both = [format!("Digest {base}, algorithm=MD5"), format!("Digest {base}, algorithm=SHA-256")];
        let c = strongest(both.iter().map(String::as_str)).unwrap();
        assert_eq!(c.algorithm, Algorithm::Sha256, "the strongest offer wins");
        let a = Answer {
            username: "Mufasa",
            password: "Circle of Life",
            method: "GET",
            uri: "/dir/index.html",
            nc: 1,
            cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        };
        assert_eq!(
            field(&c.answer(&a), "response"),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
        let md5 = Challenge::parse(&both[0]).unwrap();
        assert_eq!(field(&md5.answer(&a), "response"), "8ca523f5e9506fed4657c9700eebdbec");
    }

    #[test]
    fn no_qop_md5_sess_stale_and_nc_width() {
        let c = Challenge::parse(r#"Digest realm="r", nonce="n""#).unwrap();
        assert!(!c.qop_auth);
        let h =
            c.answer(&Answer { username: "u", password: "p", method: "REGISTER", uri: "sip:r", nc: 1, cnonce: "c" });
        assert!(!h.contains("qop") && !h.contains("nc=") && !h.contains("cnonce"), "{h}");
        // RFC 2069 style: MD5(HA1:nonce:HA2).
        let ha1 = hex(&Md5::digest(b"u:r:p"));
        let ha2 = hex(&Md5::digest(b"REGISTER:sip:r"));
        assert_eq!(field(&h, "response"), hex(&Md5::digest(format!("{ha1}:n:{ha2}").as_bytes())));
        let s = Challenge::parse(r#"Digest realm="r", nonce="n", qop=auth, algorithm=MD5-sess, stale=TRUE"#).unwrap();
        assert!(s.stale && s.algorithm == Algorithm::Md5Sess);
        let h =
            s.answer(&Answer { username: "u", password: "p", method: "REGISTER", uri: "sip:r", nc: 300, cnonce: "c" });
        assert!(h.contains("nc=0000012c"), "nc past 255 stays eight hex digits: {h}");
    }

    #[test]
    fn bad_challenges_are_errors_not_panics() {
        assert_eq!(
            Challenge::parse(r#"Digest realm="r", nonce="n", algorithm=SHA-512-256"#),
            Err(ChallengeError::UnknownAlgorithm("SHA-512-256".into()))
        );
        assert_eq!(Challenge::parse(r#"Digest realm="r""#), Err(ChallengeError::Missing("nonce")));
        assert_eq!(Challenge::parse(r#"Basic realm="r""#), Err(ChallengeError::NotDigest));
        assert_eq!(Challenge::parse(r#"Digest realm="r, nonce="n"#), Err(ChallengeError::Malformed));
        assert_eq!(
            Challenge::parse(r#"Digest realm="r", nonce="n", qop="auth-int""#),
            Err(ChallengeError::Missing("qop=auth"))
        );
        assert!(Challenge::parse("Digest").is_err());
        assert!(Challenge::parse("").is_err());
        assert!(strongest(["Digest realm=\"r\""]).is_err());
    }
}
