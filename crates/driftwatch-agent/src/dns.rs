//! The DNS names of the addresses a container talks to, learnt passively from the DNS answers
//! the container itself received (the sensor's `cgroup_skb/ingress` copies them; the agent never
//! makes a lookup): `fd.sip.name`, `fd.cip.name`, `fd.lip.name`, `fd.rip.name`.
//!
//! [`parse`] reads one DNS response (header, questions, answers: A, AAAA and CNAME chains, name
//! compression bounded against loops and overlong names). Answers are hostile input: the parser
//! never panics, never trusts a count or a length, and gives up on what it cannot read.
//! [`DnsNames`] keeps, per container, address → the *question* name (what the application asked
//! for, lower-cased, without the trailing dot: a CNAME chain's last name is the CDN's, not the
//! one the application knows), bounded: at most `max_per_container` addresses, the least
//! recently learned evicted first. Entries do not expire with their TTL: applications cache
//! answers longer than their TTL (and connection pools outlive them), so an address keeps its
//! name until it is evicted, learned again under another name, or the container goes.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// The longest name in presentation format that is kept (a wire name is at most 255 bytes;
/// escaped bytes take four characters each).
const NAME_MAX_WIRE: usize = 255;
/// Compression pointers followed per name, at most.
const MAX_JUMPS: usize = 32;
/// Questions skipped, at most (a response has one).
const MAX_QUESTIONS: usize = 4;
/// Resource records read, at most (a 512-byte answer holds at most ~40).
const MAX_RECORDS: usize = 128;
/// CNAME links followed from the question name, at most.
const MAX_CHAIN: usize = 16;

const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;

/// Why a message was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Shorter than its header, or a name, a question or a record runs past the end.
    #[error("truncated DNS message")]
    Truncated,
    /// A query, not a response.
    #[error("a DNS query, not a response")]
    NotResponse,
    /// No question (nothing to name the addresses after).
    #[error("a DNS response without a question")]
    NoQuestion,
    /// A name with a bad label type, a pointer loop or forward pointer, or longer than 255
    /// bytes.
    #[error("a malformed name in a DNS message")]
    BadName,
}

/// What one response says: its question name and the addresses it (through CNAMEs) resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The question name, lower-cased, no trailing dot.
    pub name: String,
    /// The addresses of the question name's A and AAAA records (directly or through a CNAME
    /// chain), in the order of the answer section.
    pub addrs: Vec<IpAddr>,
}

struct Reader<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn u16(&mut self) -> Result<u16, ParseError> {
        let b = self
            .msg
            .get(self.pos..self.pos.saturating_add(2))
            .ok_or(ParseError::Truncated)?;
        self.pos += 2;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn skip(&mut self, n: usize) -> Result<(), ParseError> {
        let end = self.pos.checked_add(n).ok_or(ParseError::Truncated)?;
        if end > self.msg.len() {
            return Err(ParseError::Truncated);
        }
        self.pos = end;
        Ok(())
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], ParseError> {
        let start = self.pos;
        self.skip(n)?;
        self.msg.get(start..self.pos).ok_or(ParseError::Truncated)
    }

    /// A (possibly compressed) name at the current position, in presentation format; the
    /// position moves past it (past the first pointer, if any).
    fn name(&mut self) -> Result<String, ParseError> {
        let (name, end) = read_name(self.msg, self.pos)?;
        self.pos = end;
        Ok(name)
    }
}

/// Reads the name at `start`: (its text, where the name ends in the message). Every pointer must
/// point strictly before the label sequence it appears in (so no loop is possible), at most
/// [`MAX_JUMPS`] are followed, and the name may not exceed 255 bytes on the wire.
fn read_name(msg: &[u8], start: usize) -> Result<(String, usize), ParseError> {
    let mut out = String::new();
    let mut pos = start;
    // where the current label sequence began: a pointer must go below it
    let mut seq_start = start;
    let mut end = None;
    let mut jumps = 0;
    let mut wire_len = 1usize; // the root label
    loop {
        let len = *msg.get(pos).ok_or(ParseError::Truncated)?;
        match len & 0xc0 {
            0x00 => {
                if len == 0 {
                    let end = end.unwrap_or(pos + 1);
                    return Ok((out, end));
                }
                let l = usize::from(len);
                wire_len += l + 1;
                if wire_len > NAME_MAX_WIRE {
                    return Err(ParseError::BadName);
                }
                let label = msg.get(pos + 1..pos + 1 + l).ok_or(ParseError::Truncated)?;
                if !out.is_empty() {
                    out.push('.');
                }
                push_label(&mut out, label);
                pos += 1 + l;
            }
            0xc0 => {
                let lo = *msg.get(pos + 1).ok_or(ParseError::Truncated)?;
                let target = usize::from(u16::from_be_bytes([len & 0x3f, lo]));
                if end.is_none() {
                    end = Some(pos + 2);
                }
                jumps += 1;
                if jumps > MAX_JUMPS || target >= seq_start {
                    return Err(ParseError::BadName);
                }
                pos = target;
                seq_start = target;
            }
            // 0x40 (extended label types), 0x80 (reserved)
            _ => return Err(ParseError::BadName),
        }
    }
}

/// One label, lower-cased; bytes that would make the text ambiguous or unprintable (a dot or
/// backslash inside a label, controls, non-ASCII) as `\DDD`, as DNS presentation format does.
fn push_label(out: &mut String, label: &[u8]) {
    for &b in label {
        match b {
            b'.' | b'\\' | 0..=0x20 | 0x7f..=0xff => {
                out.push('\\');
                out.push(char::from(b'0' + b / 100));
                out.push(char::from(b'0' + (b / 10) % 10));
                out.push(char::from(b'0' + b % 10));
            }
            _ => out.push(char::from(b.to_ascii_lowercase())),
        }
    }
}

/// One resource record that matters here.
enum Rr {
    Addr(String, IpAddr),
    Cname(String, String),
}

/// Parses one DNS response. Records after a damaged one are ignored (a truncated answer still
/// names what it holds whole).
pub fn parse(msg: &[u8]) -> Result<Answer, ParseError> {
    let mut r = Reader { msg, pos: 0 };
    let _id = r.u16()?;
    let flags = r.u16()?;
    if flags & 0x8000 == 0 {
        return Err(ParseError::NotResponse);
    }
    let qdcount = usize::from(r.u16()?);
    let ancount = usize::from(r.u16()?);
    let _nscount = r.u16()?;
    let _arcount = r.u16()?;
    if qdcount == 0 {
        return Err(ParseError::NoQuestion);
    }
    let mut qname = None;
    for _ in 0..qdcount.min(MAX_QUESTIONS) {
        let name = r.name()?;
        r.skip(4)?; // type, class
        qname.get_or_insert(name);
    }
    if qdcount > MAX_QUESTIONS {
        // the answers cannot be found without reading every question
        return Err(ParseError::Truncated);
    }
    let qname = qname.ok_or(ParseError::NoQuestion)?;
    if qname.is_empty() {
        return Err(ParseError::NoQuestion);
    }
    let mut rrs = Vec::new();
    for _ in 0..ancount.min(MAX_RECORDS) {
        let Ok(rr) = record(&mut r) else { break };
        rrs.extend(rr);
    }
    // the question name and its aliases, following the CNAME chain (in any order, bounded)
    let mut names = vec![qname.clone()];
    for _ in 0..MAX_CHAIN {
        let next = rrs.iter().find_map(|rr| match rr {
            Rr::Cname(owner, target) if names.contains(owner) && !names.contains(target) => {
                Some(target.clone())
            }
            _ => None,
        });
        match next {
            Some(n) => names.push(n),
            None => break,
        }
    }
    let addrs = rrs
        .iter()
        .filter_map(|rr| match rr {
            Rr::Addr(owner, ip) if names.contains(owner) => Some(*ip),
            _ => None,
        })
        .collect();
    Ok(Answer { name: qname, addrs })
}

/// One resource record of the answer section: `Some` for IN A, AAAA and CNAME.
fn record(r: &mut Reader<'_>) -> Result<Option<Rr>, ParseError> {
    let owner = r.name()?;
    let ty = r.u16()?;
    let class = r.u16()?;
    r.skip(4)?; // ttl
    let rdlen = usize::from(r.u16()?);
    let rdata_at = r.pos;
    let rdata = r.bytes(rdlen)?;
    if class != CLASS_IN {
        return Ok(None);
    }
    Ok(match (ty, rdata.len()) {
        (TYPE_A, 4) => Some(Rr::Addr(
            owner,
            IpAddr::V4(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3])),
        )),
        (TYPE_AAAA, 16) => {
            let mut a = [0u8; 16];
            a.copy_from_slice(rdata);
            Some(Rr::Addr(owner, IpAddr::V6(Ipv6Addr::from(a))))
        }
        (TYPE_CNAME, _) => {
            // the target may point back into the message: read it from the whole message,
            // and it must end within the rdata
            let (target, end) = read_name(r.msg, rdata_at)?;
            if end > rdata_at + rdlen {
                return Err(ParseError::BadName);
            }
            Some(Rr::Cname(owner, target))
        }
        _ => None,
    })
}

/// One container's names: address → name, and the order they were learnt in.
#[derive(Debug, Default)]
struct Names {
    /// address → (name, learn sequence number)
    by_addr: HashMap<IpAddr, (Arc<str>, u64)>,
    /// (sequence number, address), oldest first; entries whose number no longer matches
    /// `by_addr` are stale (the address was learnt again since)
    order: VecDeque<(u64, IpAddr)>,
    seq: u64,
}

impl Names {
    fn learn(&mut self, ip: IpAddr, name: Arc<str>, max: usize) {
        self.seq += 1;
        self.by_addr.insert(ip, (name, self.seq));
        self.order.push_back((self.seq, ip));
        while self.by_addr.len() > max {
            let Some((seq, old)) = self.order.pop_front() else {
                break;
            };
            if self.by_addr.get(&old).is_some_and(|(_, s)| *s == seq) {
                self.by_addr.remove(&old);
            }
        }
        // stale entries of addresses learnt again: keep the queue within a bound
        if self.order.len() > 2 * max + 16 {
            let by_addr = &self.by_addr;
            self.order
                .retain(|(seq, ip)| by_addr.get(ip).is_some_and(|(_, s)| s == seq));
        }
    }
}

/// The DNS names each container's answers gave its peers' addresses (see the module docs).
#[derive(Debug)]
pub struct DnsNames {
    max_per_container: usize,
    containers: HashMap<String, Names>,
}

impl DnsNames {
    /// A cache keeping at most `max_per_container` addresses per container (at least one).
    pub fn new(max_per_container: usize) -> DnsNames {
        DnsNames {
            max_per_container: max_per_container.max(1),
            containers: HashMap::new(),
        }
    }

    /// Learns what one DNS answer the container received says: each address it resolves the
    /// question name to now has that name. Returns how many addresses were learnt (0 for
    /// anything that is not a usable response).
    pub fn learn(&mut self, container_id: &str, payload: &[u8]) -> usize {
        let Ok(answer) = parse(payload) else {
            return 0;
        };
        if answer.addrs.is_empty() {
            return 0;
        }
        let names = match self.containers.get_mut(container_id) {
            Some(n) => n,
            None => self.containers.entry(container_id.to_string()).or_default(),
        };
        let name: Arc<str> = Arc::from(answer.name.as_str());
        for ip in &answer.addrs {
            names.learn(*ip, Arc::clone(&name), self.max_per_container);
        }
        answer.addrs.len()
    }

    /// The name the container's answers gave `ip`, if any. An IPv4-mapped IPv6 address is
    /// looked up as its IPv4 address too.
    pub fn name_of(&self, container_id: &str, ip: IpAddr) -> Option<&str> {
        let names = self.containers.get(container_id)?;
        let found = names.by_addr.get(&ip).or_else(|| match ip {
            IpAddr::V6(v6) => names.by_addr.get(&IpAddr::V4(v6.to_ipv4_mapped()?)),
            IpAddr::V4(_) => None,
        });
        found.map(|(name, _)| &**name)
    }

    /// The addresses the container's answers gave a name matching `pattern` (a name, or
    /// `*.domain` for any name under it: `driftwatch_baseline::name_matches`).
    pub fn addresses_of(&self, container_id: &str, pattern: &str) -> Vec<IpAddr> {
        self.containers
            .get(container_id)
            .map_or_else(Vec::new, |n| {
                n.by_addr
                    .iter()
                    .filter(|(_, (name, _))| driftwatch_baseline::name_matches(pattern, name))
                    .map(|(ip, _)| *ip)
                    .collect()
            })
    }

    /// Drops everything learnt for a container (it is gone).
    pub fn forget(&mut self, container_id: &str) {
        self.containers.remove(container_id);
    }

    /// Addresses known for a container.
    pub fn len_of(&self, container_id: &str) -> usize {
        self.containers
            .get(container_id)
            .map_or(0, |n| n.by_addr.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A name in wire format, uncompressed.
    fn wire(name: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for label in name.split('.').filter(|l| !l.is_empty()) {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        out
    }

    /// A response to `qname` (type `qtype`), its answers given as (owner, type, rdata); an owner
    /// of `None` is a pointer to the question name (offset 12), as real servers write it.
    fn response(qname: &str, qtype: u16, answers: &[(Option<&str>, u16, Vec<u8>)]) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1];
        m.extend_from_slice(&(answers.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0]);
        m.extend_from_slice(&wire(qname));
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        for (owner, ty, rdata) in answers {
            match owner {
                Some(o) => m.extend_from_slice(&wire(o)),
                None => m.extend_from_slice(&[0xc0, 0x0c]),
            }
            m.extend_from_slice(&ty.to_be_bytes());
            m.extend_from_slice(&[0, 1, 0, 0, 0x0e, 0x10]);
            m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            m.extend_from_slice(rdata);
        }
        m
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    /// `www.Example.COM` → CNAME `edge.cdn.example.net` → two A records (one with its owner in
    /// other case) and an AAAA, and an unrelated A record.
    fn cname_chain() -> Vec<u8> {
        response(
            "www.Example.COM.",
            TYPE_A,
            &[
                (None, TYPE_CNAME, wire("edge.cdn.example.net")),
                (Some("edge.cdn.example.net"), TYPE_A, vec![192, 0, 2, 1]),
                (Some("EDGE.cdn.example.net"), TYPE_A, vec![192, 0, 2, 2]),
                (
                    Some("edge.cdn.example.net"),
                    TYPE_AAAA,
                    "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets().to_vec(),
                ),
                // not on the chain: ignored
                (Some("other.example"), TYPE_A, vec![198, 51, 100, 9]),
            ],
        )
    }

    #[test]
    fn a_answer_names_its_address_after_the_question() {
        let msg = response(
            "svc.drift.test",
            TYPE_A,
            &[(None, TYPE_A, vec![10, 1, 2, 3])],
        );
        let a = parse(&msg).expect("parses");
        assert_eq!(a.name, "svc.drift.test");
        assert_eq!(a.addrs, [ip("10.1.2.3")]);
        let mut names = DnsNames::new(8);
        assert_eq!(names.learn("c1", &msg), 1);
        assert_eq!(names.name_of("c1", ip("10.1.2.3")), Some("svc.drift.test"));
        assert_eq!(
            names.name_of("c1", ip("::ffff:10.1.2.3")),
            Some("svc.drift.test")
        );
        assert_eq!(names.name_of("c1", ip("10.1.2.4")), None);
        assert_eq!(names.name_of("c2", ip("10.1.2.3")), None, "per container");
        names.forget("c1");
        assert_eq!(names.name_of("c1", ip("10.1.2.3")), None);
    }

    #[test]
    fn cname_chains_give_the_question_name_lower_cased_without_the_dot() {
        let a = parse(&cname_chain()).expect("parses");
        assert_eq!(a.name, "www.example.com");
        assert_eq!(
            a.addrs,
            [ip("192.0.2.1"), ip("192.0.2.2"), ip("2001:db8::1")]
        );
    }

    #[test]
    fn compressed_cname_targets_and_owners_are_followed() {
        // question "a.b.test" at 12; the CNAME's target is "x." + pointer to "b.test" (offset
        // 14), the A record's owner a pointer to the CNAME target.
        let mut m = vec![0, 1, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
        m.extend_from_slice(&wire("a.b.test"));
        m.extend_from_slice(&[0, 1, 0, 1]);
        m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 4]);
        let target_at = m.len();
        m.extend_from_slice(&[1, b'x', 0xc0, 14]);
        m.extend_from_slice(&[0xc0, target_at as u8, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        m.extend_from_slice(&[10, 0, 0, 7]);
        let a = parse(&m).expect("parses");
        assert_eq!(a.name, "a.b.test");
        assert_eq!(a.addrs, [ip("10.0.0.7")]);
    }

    #[test]
    fn pointer_loops_forward_pointers_and_long_names_are_refused() {
        // a pointer to itself
        let mut m = vec![
            0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1,
        ];
        assert_eq!(parse(&m), Err(ParseError::BadName));
        // a forward pointer
        m[13] = 16;
        assert_eq!(parse(&m), Err(ParseError::BadName));
        // two labels pointing at each other: 12 -> "a" + ptr 15; 15 -> "b" + ptr 12
        let m = [
            0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 0xc0, 15, 1, b'b', 0xc0, 12, 0, 1,
            0, 1,
        ];
        assert_eq!(parse(&m), Err(ParseError::BadName));
        // a name longer than 255 bytes
        let long = (0..5).map(|_| "a".repeat(63)).collect::<Vec<_>>().join(".");
        let m = response(&long, TYPE_A, &[]);
        assert_eq!(parse(&m), Err(ParseError::BadName));
        // extended label type
        let m = [
            0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0x41, 0, 0, 1, 0, 1,
        ];
        assert_eq!(parse(&m), Err(ParseError::BadName));
    }

    #[test]
    fn queries_empty_and_truncated_messages_are_not_learnt() {
        let mut q = response(
            "svc.drift.test",
            TYPE_A,
            &[(None, TYPE_A, vec![10, 0, 0, 1])],
        );
        let full = q.clone();
        q[2] &= 0x7f; // QR = 0: a query
        assert_eq!(parse(&q), Err(ParseError::NotResponse));
        assert_eq!(parse(&[]), Err(ParseError::Truncated));
        assert_eq!(parse(&full[..11]), Err(ParseError::Truncated));
        // cut inside the answer: the question parses, the damaged record is dropped
        let cut = parse(&full[..full.len() - 1]).expect("question whole");
        assert!(cut.addrs.is_empty());
        let mut names = DnsNames::new(4);
        assert_eq!(names.learn("c", &full[..full.len() - 1]), 0);
        assert_eq!(names.learn("c", &q), 0);
        // no question
        let mut nq = full.clone();
        nq[5] = 0;
        assert_eq!(parse(&nq), Err(ParseError::NoQuestion));
    }

    #[test]
    fn hostile_label_bytes_are_escaped_not_passed_through() {
        let mut m = vec![0, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
        m.extend_from_slice(&[
            5, b'a', b'.', b'\n', 0xff, b'B', 4, b't', b'e', b's', b't', 0,
        ]);
        m.extend_from_slice(&[
            0, 1, 0, 1, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 10, 9, 9, 9,
        ]);
        let a = parse(&m).expect("parses");
        assert_eq!(a.name, "a\\046\\010\\255b.test");
        assert_eq!(a.addrs, [ip("10.9.9.9")]);
    }

    #[test]
    fn the_cache_is_bounded_least_recently_learned_first() {
        let mut names = DnsNames::new(3);
        let answer = |n: u8| {
            response(
                &format!("h{n}.test"),
                TYPE_A,
                &[(None, TYPE_A, vec![10, 0, 0, n])],
            )
        };
        for n in 1..=3 {
            assert_eq!(names.learn("c", &answer(n)), 1);
        }
        // 1 learnt again: now the most recent; 4 evicts 2, the least recently learnt
        names.learn("c", &answer(1));
        names.learn("c", &answer(4));
        assert_eq!(names.len_of("c"), 3);
        assert_eq!(names.name_of("c", ip("10.0.0.2")), None);
        for n in [1, 3, 4] {
            let want = format!("h{n}.test");
            assert_eq!(
                names.name_of("c", ip(&format!("10.0.0.{n}"))),
                Some(want.as_str())
            );
        }
        // an address learnt under a new name takes it
        let renamed = response("new.test", TYPE_A, &[(None, TYPE_A, vec![10, 0, 0, 3])]);
        names.learn("c", &renamed);
        assert_eq!(names.name_of("c", ip("10.0.0.3")), Some("new.test"));
        // re-learning the same address many times keeps the bookkeeping bounded
        for _ in 0..1000 {
            names.learn("c", &answer(1));
        }
        let n = &names.containers["c"];
        assert!(n.order.len() <= 2 * 3 + 16, "{}", n.order.len());
        assert_eq!(n.by_addr.len(), 3);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse(&bytes);
            let mut names = DnsNames::new(4);
            let _ = names.learn("c", &bytes);
            prop_assert!(names.len_of("c") <= 4);
        }

        #[test]
        fn mutated_real_answers_never_panic(
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in any::<usize>(),
        ) {
            for base in [cname_chain(), response("svc.drift.test", TYPE_AAAA,
                &[(None, TYPE_AAAA, vec![0xfd; 16]), (None, TYPE_A, vec![10, 0, 0, 1])])] {
                let mut m = base.clone();
                for (at, b) in &edits {
                    let i = at % m.len();
                    m[i] = *b;
                }
                let m = &m[..cut % (m.len() + 1)];
                if let Ok(a) = parse(m) {
                    prop_assert!(a.addrs.len() <= MAX_RECORDS);
                    prop_assert!(a.name.len() <= 4 * NAME_MAX_WIRE);
                }
                let mut names = DnsNames::new(2);
                let _ = names.learn("c", m);
                prop_assert!(names.len_of("c") <= 2);
            }
        }
    }
}
