//! Certificate principals: the subject DN of a client certificate in RFC 2253 form
//! (`CN=alice,OU=eng,O=acme`, the last RDN of the DER sequence first, as Java's
//! `X500Principal.getName()` writes it) and Kafka's `ssl.principal.mapping.rules`, which turn
//! that DN into the principal's name.
//!
//! Rule syntax (Kafka's): a comma- or newline-separated list of `DEFAULT` and
//! `RULE:<regex>/<replacement>/[L|U]`. The first rule whose regex matches the whole DN wins; its
//! replacement (`$1`, `${name}`, `\` escapes the next character) is the name, lower- or
//! upper-cased with `L` / `U`. `DEFAULT` keeps the DN as it is. A DN no rule matches has no
//! principal and the connection is refused.

use regex::Regex;

/// A rule list that could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("invalid ssl.principal.mapping.rules `{rules}`: {reason}")]
pub struct RuleError {
    /// The rules as written.
    pub rules: String,
    /// What is wrong.
    pub reason: String,
}

/// One mapping rule.
#[derive(Debug, Clone)]
enum Rule {
    /// Keep the DN.
    Default,
    /// Replace a DN the regex matches in full.
    Replace {
        /// `^(?:pattern)$`.
        regex: Regex,
        /// The replacement as written (Java syntax).
        replacement: String,
        /// Lower- or upper-case the result.
        case: Case,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

/// Parsed `ssl.principal.mapping.rules`.
#[derive(Debug, Clone)]
pub struct PrincipalMapper {
    rules: Vec<Rule>,
}

impl Default for PrincipalMapper {
    fn default() -> Self {
        PrincipalMapper {
            rules: vec![Rule::Default],
        }
    }
}

impl PrincipalMapper {
    /// Parses a rule list (empty means `DEFAULT`).
    pub fn parse(rules: &str) -> Result<PrincipalMapper, RuleError> {
        let err = |reason: String| RuleError {
            rules: rules.to_string(),
            reason,
        };
        let mut out = Vec::new();
        let mut rest = rules.trim_start();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("DEFAULT") {
                out.push(Rule::Default);
                rest = r;
            } else if let Some(r) = rest.strip_prefix("RULE:") {
                let (pattern, r) =
                    until_slash(r).ok_or_else(|| err("a RULE needs /replacement/".into()))?;
                let (replacement, r) =
                    until_slash(r).ok_or_else(|| err("a RULE needs a closing `/`".into()))?;
                let (case, r) = match r.as_bytes().first() {
                    Some(b'L') => (Case::Lower, &r[1..]),
                    Some(b'U') => (Case::Upper, &r[1..]),
                    _ => (Case::Keep, r),
                };
                let regex = Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|e| err(format!("bad regex `{pattern}`: {e}")))?;
                out.push(Rule::Replace {
                    regex,
                    replacement: replacement.to_string(),
                    case,
                });
                rest = r;
            } else {
                let shown: String = rest.chars().take(20).collect();
                return Err(err(format!(
                    "expected DEFAULT or RULE:pattern/replacement/[LU] at `{shown}`"
                )));
            }
            // Then a separator (or the end), with optional blanks around it.
            rest = rest.trim_start_matches([' ', '\t', '\r']);
            match rest.as_bytes().first() {
                None => {}
                Some(b',' | b'\n') => rest = rest[1..].trim_start(),
                Some(_) => {
                    let shown: String = rest.chars().take(20).collect();
                    return Err(err(format!("unexpected `{shown}` after a rule")));
                }
            }
        }
        if out.is_empty() {
            out.push(Rule::Default);
        }
        Ok(PrincipalMapper { rules: out })
    }

    /// The principal name for a DN: the first matching rule's result, `None` when no rule
    /// applies.
    pub fn map(&self, dn: &str) -> Option<String> {
        for rule in &self.rules {
            match rule {
                Rule::Default => return Some(dn.to_string()),
                Rule::Replace {
                    regex,
                    replacement,
                    case,
                } => {
                    let Some(caps) = regex.captures(dn) else {
                        continue;
                    };
                    let out = expand(replacement, &caps);
                    return Some(match case {
                        Case::Keep => out,
                        Case::Lower => out.to_lowercase(),
                        Case::Upper => out.to_uppercase(),
                    });
                }
            }
        }
        None
    }
}

/// Splits at the first `/` not escaped by `\`: (before, after the slash).
fn until_slash(s: &str) -> Option<(&str, &str)> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'/' => return Some((&s[..i], &s[i + 1..])),
            _ => i += 1,
        }
    }
    None
}

/// Expands a Java-style replacement: `$n` (as many digits as still name a group), `${name}`,
/// and `\c` for a literal `c`.
fn expand(replacement: &str, caps: &regex::Captures<'_>) -> String {
    let mut out = String::new();
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            '$' if chars.peek() == Some(&'{') => {
                chars.next();
                let name: String = chars.by_ref().take_while(|c| *c != '}').collect();
                if let Some(m) = caps.name(&name) {
                    out.push_str(m.as_str());
                }
            }
            '$' if chars.peek().is_some_and(|c| c.is_ascii_digit()) => {
                let mut group = 0usize;
                while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                    let next = group * 10 + d as usize;
                    if group != 0 && next >= caps.len() {
                        break;
                    }
                    group = next;
                    chars.next();
                }
                if let Some(m) = caps.get(group) {
                    out.push_str(m.as_str());
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// RFC 2253 keywords, as Java prints them; other attribute types are written as their OID.
const KEYWORDS: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.9", "STREET"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("0.9.2342.19200300.100.1.1", "UID"),
];

/// Why a certificate's subject could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the certificate subject: {0}")]
pub struct SubjectError(String);

/// The subject DN of a DER certificate in RFC 2253 form.
pub fn subject_dn(der: &[u8]) -> Result<String, SubjectError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| SubjectError(e.to_string()))?;
    let mut rdns = Vec::new();
    for rdn in cert.subject().iter() {
        let mut parts = Vec::new();
        for atv in rdn.iter() {
            let oid = atv.attr_type().to_id_string();
            let value = atv.attr_value();
            let text = match KEYWORDS.iter().find(|(o, _)| *o == oid) {
                Some((_, kw)) => match string_value(value) {
                    Some(s) => format!("{kw}={}", escape(&s)),
                    None => format!("{kw}=#{}", hex_der(value)),
                },
                None => format!("{oid}=#{}", hex_der(value)),
            };
            parts.push(text);
        }
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Ok(rdns.join(","))
}

/// The text of a directory string (UTF8, Printable, IA5, Numeric, Teletex read as Latin-1,
/// BMP as UCS-2, Universal as UCS-4).
fn string_value(v: &x509_parser::der_parser::asn1_rs::Any<'_>) -> Option<String> {
    use x509_parser::der_parser::asn1_rs::{Class, Tag};
    if v.class() != Class::Universal {
        return None;
    }
    let data = v.data;
    match v.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::NumericString => {
            std::str::from_utf8(data).ok().map(str::to_string)
        }
        Tag::TeletexString => Some(data.iter().map(|b| char::from(*b)).collect()),
        Tag::BmpString => {
            let units: Vec<u16> = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        Tag::UniversalString => data
            .chunks_exact(4)
            .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        _ => None,
    }
}

/// `#`-form value: the hex of the value's whole DER encoding (tag, length, contents).
fn hex_der(v: &x509_parser::der_parser::asn1_rs::Any<'_>) -> String {
    let class = v.class() as u8;
    let tag = v.tag().0;
    let mut der = Vec::with_capacity(v.data.len() + 6);
    let constructed = if v.header.is_constructed() { 0x20 } else { 0 };
    if tag < 31 {
        der.push((class << 6) | constructed | tag as u8);
    } else {
        der.push((class << 6) | constructed | 0x1f);
        let mut groups = Vec::new();
        let mut t = tag;
        loop {
            groups.push((t & 0x7f) as u8);
            t >>= 7;
            if t == 0 {
                break;
            }
        }
        for (i, g) in groups.iter().enumerate().rev() {
            der.push(if i > 0 { g | 0x80 } else { *g });
        }
    }
    let len = v.data.len();
    if len < 0x80 {
        der.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        der.push(0x80 | bytes.len() as u8);
        der.extend_from_slice(&bytes);
    }
    der.extend_from_slice(v.data);
    der.iter().map(|b| format!("{b:02x}")).collect()
}

/// Escapes an attribute value as RFC 2253 asks: `,+"\<>;` anywhere, `#` or a space at the
/// start, a space at the end.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let n = s.chars().count();
    for (i, c) in s.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i + 1 == n && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapper(rules: &str) -> PrincipalMapper {
        PrincipalMapper::parse(rules).unwrap_or_else(|e| panic!("{e}"))
    }

    // The rules and DNs of Kafka's documentation on ssl.principal.mapping.rules.
    const DOC_RULES: &str = "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,\
        RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,\
        RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L,\
        DEFAULT";

    #[test]
    fn documented_examples() {
        let m = mapper(DOC_RULES);
        assert_eq!(
            m.map("CN=serviceuser,OU=ServiceUsers,O=Unknown,L=Unknown,ST=Unknown,C=Unknown")
                .as_deref(),
            Some("serviceuser")
        );
        assert_eq!(
            m.map("CN=adminUser,OU=Admin,O=Unknown,L=Unknown,ST=Unknown,C=Unknown")
                .as_deref(),
            Some("adminuser@admin")
        );
        assert_eq!(
            m.map("OU=Unknown,CN=Client.Name,O=x").as_deref(),
            Some("client.name")
        );
        assert_eq!(m.map("OU=JustOU").as_deref(), Some("OU=JustOU"));
        let upper = mapper("RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/U");
        assert_eq!(
            upper
                .map("CN=adminUser,OU=Admin,O=Unknown,L=Unknown,ST=Unknown,C=Unknown")
                .as_deref(),
            Some("ADMINUSER@ADMIN")
        );
    }

    #[test]
    fn default_and_no_match() {
        assert_eq!(
            mapper("DEFAULT").map("CN=a,O=b").as_deref(),
            Some("CN=a,O=b")
        );
        assert_eq!(mapper("").map("CN=a").as_deref(), Some("CN=a"));
        // No DEFAULT at the end: a DN no rule matches has no principal.
        let m = mapper("RULE:^CN=(.*?),OU=eng$/$1/");
        assert_eq!(m.map("CN=alice,OU=eng").as_deref(), Some("alice"));
        assert_eq!(m.map("CN=alice,OU=ops"), None);
        // The regex must match the whole DN.
        assert_eq!(mapper("RULE:CN=alice/x/").map("CN=alice,O=acme"), None);
    }

    #[test]
    fn newlines_blanks_and_escapes() {
        let m = mapper("  RULE:^CN=(.*?),OU=a\\/b$/$1\\/x/L ,\n DEFAULT  ");
        assert_eq!(m.map("CN=Bob,OU=a/b").as_deref(), Some("bob/x"));
        assert_eq!(m.map("CN=Bob").as_deref(), Some("CN=Bob"));
        let named = mapper("RULE:^CN=(?P<user>[a-z]+)$/${user}-$1/");
        assert_eq!(named.map("CN=carol").as_deref(), Some("carol-carol"));
        // `$10` is group 1 then `0` when there is no group 10.
        assert_eq!(
            mapper("RULE:^CN=(.*)$/$10/").map("CN=x").as_deref(),
            Some("x0")
        );
    }

    #[test]
    fn invalid_rules() {
        for bad in [
            "default",
            "DEFAUL",
            "DEFAULT/L",
            "DEFAULT/U",
            "RULE:CN=(.*?),OU=ServiceUsers.*/$1",
            "rule:^CN=(.*?),OU=ServiceUsers.*$/$1/",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L/U",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/L",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/U",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/LU",
            "RULE:^CN=((.*?)/$1/",
        ] {
            assert!(PrincipalMapper::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn escapes_rfc2253_specials() {
        assert_eq!(escape("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape(" #x "), "\\ #x\\ ");
        assert_eq!(escape("#x"), "\\#x");
        assert_eq!(escape("plain"), "plain");
    }

    #[test]
    fn subject_of_generated_certificate() {
        let mut params = rcgen::CertificateParams::default();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "DE");
        dn.push(rcgen::DnType::OrganizationName, "Acme, Inc");
        dn.push(rcgen::DnType::OrganizationalUnitName, "eng");
        dn.push(rcgen::DnType::CommonName, "alice");
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        let dn = subject_dn(cert.der()).expect("dn");
        assert_eq!(dn, "CN=alice,OU=eng,O=Acme\\, Inc,C=DE");
        assert!(subject_dn(b"not a certificate").is_err());
    }
}
