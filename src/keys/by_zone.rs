//! The good keys of a key directory by zone, in canonical zone order (RFC
//! 4034 §6.1, as hickory orders names): what a scan hands to the model.
//!
//! A persistent set (`imbl`), so a scan's report is an O(1) clone however
//! many zones there are, keyed by the keys themselves: each zone's entry is
//! its only key or its shared list of keys, ordered by the zone name its
//! (first) key carries. At a million children a map keyed by a second copy of the
//! name (an 80-octet `Name` beside each list, in half-full B-tree nodes)
//! cost ~230 octets per zone; this costs the list's pointer, 16, and
//! a zone with one key (most children) has no list at all.
//!
//! The B-tree's inner nodes hold copies of some entries as separators
//! (about one per 5-16 zones). A separator only orders (nothing reads its
//! keys: look-ups and iteration return the leaves' entries), but it keeps
//! the key views it was copied with alive until the tree reshapes there:
//! a replaced or removed key (for a zone signed here, its private half
//! too) can stay in memory that long. Bounded by the separators, and cheap:
//! a copy shares the key or the list.

use std::{borrow::Borrow, cmp::Ordering, ops::Index, sync::Arc};

use hickory_proto::rr::Name;

use super::Key;

/// One zone's keys: never empty, all of that zone, ordered by (algorithm,
/// key tag).
#[derive(Debug, Clone)]
enum ZoneKeys {
    /// A zone's only key, as most children have: no list to allocate (a
    /// one-key list cost 32 octets per child at a million).
    One(Arc<Key>),
    /// Two or more keys (a rollover, a KSK and a ZSK).
    Many(Arc<[Arc<Key>]>),
}

impl ZoneKeys {
    /// `keys` (not empty) as one zone's entry.
    fn of(mut keys: Vec<Arc<Key>>) -> Self {
        match keys.len() {
            1 => ZoneKeys::One(keys.remove(0)),
            _ => ZoneKeys::Many(keys.into()),
        }
    }

    fn keys(&self) -> &[Arc<Key>] {
        match self {
            ZoneKeys::One(key) => std::slice::from_ref(key),
            ZoneKeys::Many(keys) => keys,
        }
    }

    fn zone(&self) -> &Name {
        // Never empty: `KeysByZone` removes a zone with its last key.
        &self.keys()[0].zone
    }
}

impl PartialEq for ZoneKeys {
    fn eq(&self, other: &Self) -> bool {
        self.zone() == other.zone()
    }
}

impl Eq for ZoneKeys {}

impl PartialOrd for ZoneKeys {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ZoneKeys {
    fn cmp(&self, other: &Self) -> Ordering {
        self.zone().cmp(other.zone())
    }
}

impl Borrow<Name> for ZoneKeys {
    fn borrow(&self) -> &Name {
        self.zone()
    }
}

/// The good keys of a directory by zone.
#[derive(Debug, Clone, Default)]
pub struct KeysByZone {
    zones: imbl::OrdSet<ZoneKeys>,
}

impl KeysByZone {
    /// Zones with at least one key.
    pub fn len(&self) -> usize {
        self.zones.len()
    }

    /// True when no zone has a key.
    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    /// The keys of `zone` (none when it has none).
    pub fn get(&self, zone: &Name) -> Option<&[Arc<Key>]> {
        self.zones.get(zone).map(ZoneKeys::keys)
    }

    /// True when `zone` has a key.
    pub fn contains_key(&self, zone: &Name) -> bool {
        self.zones.contains(zone)
    }

    /// Every zone with its keys, in canonical zone order.
    pub fn iter(&self) -> impl Iterator<Item = (&Name, &[Arc<Key>])> {
        self.zones.iter().map(|keys| (keys.zone(), keys.keys()))
    }

    /// Every zone with a key, in canonical order.
    pub fn keys(&self) -> impl Iterator<Item = &Name> {
        self.zones.iter().map(ZoneKeys::zone)
    }

    /// Every key.
    pub fn all_keys(&self) -> impl Iterator<Item = &Arc<Key>> {
        self.zones.iter().flat_map(|keys| keys.keys().iter())
    }

    /// Adds `key` to its zone, keeping the zone's keys in (algorithm, key
    /// tag) order.
    pub fn add(&mut self, key: Arc<Key>) {
        // One B-tree operation for a zone's first key (a cold scan's case).
        let Some(old) = self.zones.insert(ZoneKeys::One(key.clone())) else {
            return;
        };
        let mut keys = old.keys().to_vec();
        keys.push(key);
        self.put_sorted(keys);
    }

    /// Takes `key` (this very view) out of its zone; the zone goes with its
    /// last key.
    pub fn take_out(&mut self, key: &Arc<Key>) {
        let Some(old) = self.zones.get(&key.zone).map(ZoneKeys::keys) else {
            return;
        };
        if !old.iter().any(|k| Arc::ptr_eq(k, key)) {
            return;
        }
        let keys: Vec<Arc<Key>> = old
            .iter()
            .filter(|k| !Arc::ptr_eq(k, key))
            .cloned()
            .collect();
        if keys.is_empty() {
            self.zones.remove(&key.zone);
        } else {
            self.zones.insert(ZoneKeys::of(keys));
        }
    }

    /// Puts `new` in the place of `old` (this very view): one look-up and
    /// one insert when both are of one zone, as a key's new view is.
    pub fn replace(&mut self, old: &Arc<Key>, new: Arc<Key>) {
        if old.zone != new.zone {
            self.take_out(old);
            self.add(new);
            return;
        }
        let Some(keys) = self.zones.get(&new.zone).map(ZoneKeys::keys) else {
            self.add(new);
            return;
        };
        let mut keys: Vec<Arc<Key>> = keys
            .iter()
            .filter(|k| !Arc::ptr_eq(k, old))
            .cloned()
            .collect();
        keys.push(new);
        self.put_sorted(keys);
    }

    /// Puts one zone's `keys` (not empty) in place, in (algorithm, key
    /// tag) order.
    fn put_sorted(&mut self, mut keys: Vec<Arc<Key>>) {
        keys.sort_by_key(|k| (k.algorithm, k.tag));
        self.zones.insert(ZoneKeys::of(keys));
    }
}

impl FromIterator<Arc<Key>> for KeysByZone {
    /// Groups keys by zone, in any order (a zone's keys sorted by (algorithm,
    /// key tag)).
    fn from_iter<I: IntoIterator<Item = Arc<Key>>>(keys: I) -> Self {
        let mut keys: Vec<Arc<Key>> = keys.into_iter().collect();
        let in_order = |a: &Arc<Key>, b: &Arc<Key>| {
            a.zone
                .cmp(&b.zone)
                .then((a.algorithm, a.tag).cmp(&(b.algorithm, b.tag)))
        };
        // A key cache is written in this order: comparing a million names
        // costs a warm start time, so sort only what is not.
        if keys.windows(2).any(|w| in_order(&w[0], &w[1]).is_gt()) {
            keys.sort_by(in_order);
        }
        let mut zones = imbl::OrdSet::new();
        let mut group: Vec<Arc<Key>> = Vec::new();
        for key in keys {
            if group.last().is_some_and(|last| last.zone != key.zone) {
                zones.insert(ZoneKeys::of(std::mem::take(&mut group)));
            }
            group.push(key);
        }
        if !group.is_empty() {
            zones.insert(ZoneKeys::of(group));
        }
        KeysByZone { zones }
    }
}

impl Index<&Name> for KeysByZone {
    type Output = [Arc<Key>];

    /// The keys of `zone`; panics when it has none (for tests).
    fn index(&self, zone: &Name) -> &[Arc<Key>] {
        self.get(zone)
            .unwrap_or_else(|| panic!("no keys for {zone}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(zone: &str, tag: u16) -> Arc<Key> {
        Arc::new(Key {
            tag,
            ..(*crate::keys::rfc8080_csk(zone)).clone()
        })
    }

    #[test]
    fn an_entry_is_no_larger_than_a_list() {
        // The one-key case saves an allocation only if the entry, which the
        // B-tree holds inline, stays at a list pointer's 16 octets.
        assert_eq!(std::mem::size_of::<ZoneKeys>(), 16);
    }

    #[test]
    fn keys_are_grouped_by_zone_and_a_zone_goes_with_its_last_key() {
        let a1 = key("a.example.", 1);
        let a2 = key("a.example.", 2);
        let b = key("b.example.", 3);
        let mut zones: KeysByZone = [a2.clone(), b.clone(), a1.clone()].into_iter().collect();
        let a: Name = "a.example.".parse().expect("a name");
        let b_name: Name = "b.example.".parse().expect("a name");
        assert_eq!(zones.len(), 2);
        assert_eq!(
            zones.keys().cloned().collect::<Vec<_>>(),
            [a.clone(), b_name.clone()]
        );
        assert_eq!(
            zones[&a].iter().map(|k| k.tag).collect::<Vec<_>>(),
            [a1.tag, a2.tag]
        );
        zones.take_out(&a1);
        assert_eq!(zones[&a].len(), 1);
        zones.take_out(&a2);
        assert!(!zones.contains_key(&a) && zones.get(&a).is_none());
        zones.take_out(&a2);
        assert_eq!(zones.len(), 1);
        zones.add(a1.clone());
        zones.add(a2.clone());
        assert_eq!(zones.all_keys().count(), 3);
        // A new view of a key takes the old one's place.
        let a1_new = key("a.example.", 1);
        zones.replace(&a1, a1_new.clone());
        assert!(Arc::ptr_eq(&zones[&a][0], &a1_new));
        assert_eq!(zones[&a].len(), 2);
        // A view not (or no longer) held changes nothing.
        zones.take_out(&a1);
        assert_eq!(zones[&a].len(), 2);
        assert_eq!(
            zones
                .iter()
                .map(|(z, k)| (z.clone(), k.len()))
                .collect::<Vec<_>>(),
            [(a, 2), (b_name, 1)]
        );
    }
}
