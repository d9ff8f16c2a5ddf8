//! The zone's name index: every data name's node by a 64-bit hash of its
//! lower-case wire owner, in a persistent B-tree (see [`Names`]).

use std::sync::Arc;

use super::Node;

/// The data names of a zone by lower-case wire name: the nodes in a
/// persistent B-tree ordered by a 64-bit hash of their owners ([`Named`]);
/// a look-up compares the query name with the owner in the node it then
/// answers from. Empty non-terminals are not in it: the canonical order
/// tells them ([`ZoneStore::entry`]).
///
/// A B-tree of 8-octet hashes, not a hash trie (`imbl::HashMap`): the
/// trie's nodes have room for 32 entries whether or not they hold them,
/// and at a million names it cost 108 octets a name against 40 for the
/// B-tree, whose nodes are at least half full (measured side by side,
/// BENCHMARKS.md). Its separators are hashes, so a replaced node is not
/// kept alive by a copy in an inner node. FxHash, not SipHash: every query
/// hashes its name (SipHash was ~4% of a query's CPU), and what is inserted
/// comes from the zone's own content, never from a query: a remote party
/// can neither pick the hashes nor make the tree deep.
pub(super) type Names = imbl::OrdMap<u64, Named>;

/// The node, or the nodes, whose owners have one hash in the name index
/// (two names of a zone with one 64-bit hash: about never, but handled).
#[derive(Debug, Clone)]
pub(super) enum Named {
    One(Node),
    Many(Arc<[Node]>),
}

impl Named {
    /// `nodes` (not empty) as one entry.
    pub(super) fn of(mut nodes: Vec<Node>) -> Self {
        match nodes.len() {
            1 => Named::One(nodes.remove(0)),
            _ => Named::Many(nodes.into()),
        }
    }

    pub(super) fn nodes(&self) -> &[Node] {
        match self {
            Named::One(node) => std::slice::from_ref(node),
            Named::Many(nodes) => nodes,
        }
    }

    /// The node at lower-case wire name `wire`.
    pub(super) fn find(&self, wire: &[u8]) -> Option<&Node> {
        self.nodes().iter().find(|node| node.wire() == wire)
    }

    /// Its nodes but the one at `wire`.
    fn without(&self, wire: &[u8]) -> Vec<Node> {
        self.nodes()
            .iter()
            .filter(|node| node.wire() != wire)
            .cloned()
            .collect()
    }
}

/// Takes the node at `wire`, whose owner hashes to `hash`, out of `names`.
pub(super) fn take_named_at(names: &mut Names, hash: u64, wire: &[u8]) {
    let Some(named) = names.get(&hash) else {
        return;
    };
    let rest = named.without(wire);
    match rest.len() {
        0 => {
            names.remove(&hash);
        }
        n if n == named.nodes().len() => {}
        _ => {
            names.insert(hash, Named::of(rest));
        }
    }
}

/// The name index's hash of a lower-case wire name.
pub(super) fn name_hash(wire: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(wire)
}

/// Puts `node` in `names`, in place of what was at its owner; true when a
/// node of that name was there.
pub(super) fn put_named(names: &mut Names, node: Node) -> bool {
    put_named_at(names, name_hash(node.wire()), node)
}

/// [`put_named`] with the owner's hash given (tests give two names one).
pub(super) fn put_named_at(names: &mut Names, hash: u64, node: Node) -> bool {
    // One descent in the common cases, a new name or a new node of the
    // same name (a warm start puts a million in a row).
    let new = node.clone();
    let Some(old) = names.insert(hash, Named::One(node)) else {
        return false;
    };
    if matches!(&old, Named::One(old) if old.wire() == new.wire()) {
        return true;
    }
    let replaced = old.find(new.wire()).is_some();
    // Another name with this hash: both stay.
    let mut nodes = old.without(new.wire());
    nodes.push(new);
    names.insert(hash, Named::of(nodes));
    replaced
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        dns::{name::canonical_wire, parse_name},
        zone::{content::RrsetData, store::Rrset},
    };
    use hickory_proto::rr::RecordType;

    #[test]
    fn names_with_one_hash_share_an_index_entry_and_part_again() {
        let wire = |text: &str| canonical_wire(&parse_name(text).expect("a name"));
        let (a, b) = (wire("a.example."), wire("b.example."));
        let node = |wire: &[u8], ttl: u32| {
            let data = RrsetData::new(RecordType::TXT, ttl, vec![b"\x01x".to_vec()]);
            Node::new(wire, &[Rrset::unsigned(&data)])
        };
        let ttl = |names: &Names, wire: &[u8]| {
            names
                .get(&7)
                .and_then(|named| named.find(wire))
                .map(|node| node.rrsets().next().expect("an RRset").ttl)
        };
        let mut names = Names::new();
        put_named_at(&mut names, 7, node(&a, 1));
        put_named_at(&mut names, 7, node(&b, 2));
        assert_eq!((ttl(&names, &a), ttl(&names, &b)), (Some(1), Some(2)));
        // A new node of one name replaces its old one only.
        put_named_at(&mut names, 7, node(&a, 3));
        assert_eq!((ttl(&names, &a), ttl(&names, &b)), (Some(3), Some(2)));
        assert_eq!(names[&7].nodes().len(), 2);
        // Taking a name out leaves the other; a name not there changes nothing.
        take_named_at(&mut names, 7, &wire("c.example."));
        take_named_at(&mut names, 7, &a);
        assert_eq!((ttl(&names, &a), ttl(&names, &b)), (None, Some(2)));
        assert!(matches!(names[&7], Named::One(_)));
        take_named_at(&mut names, 7, &b);
        assert!(names.is_empty());
    }
}
