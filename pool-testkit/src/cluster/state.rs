//! Who is primary, who streams from whom, which nodes run and which are cut
//! off: the cluster's bookkeeping, with no I/O.
//!
//! Every operation is checked here first and booked only after the engine
//! (processes, containers, proxies) did it, so a failed operation leaves
//! the books as they were. Unit-tested at the bottom of this file, in the
//! house style of `pool-runtime/src/pool/ledger.rs`.

use std::fmt;

/// What a node is, as far as the cluster knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The writable node: the one the cluster calls primary.
    Primary,
    /// A streaming standby (read-only) of node `upstream`.
    Standby {
        /// The node it streams from.
        upstream: usize,
    },
    /// A primary that was replaced by a promotion. Still writable if it
    /// runs (split brain, as in real failovers); [`rewind`](super::Cluster::rewind)
    /// turns it into a standby of the new primary.
    Former,
}

/// One node's books.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeState {
    /// Its role.
    pub role: Role,
    /// Whether its server process (or container) runs.
    pub running: bool,
    /// Whether it is cut off the network (see [`Cluster::partition`](super::Cluster::partition)).
    pub partitioned: bool,
}

/// An operation the books refuse, with why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// There is no node with this index.
    NoSuchNode {
        /// The index asked for.
        node: usize,
        /// How many nodes the cluster has.
        len: usize,
    },
    /// The operation needs another role.
    WrongRole {
        /// The operation.
        operation: &'static str,
        /// The node.
        node: usize,
        /// Its role now.
        role: Role,
        /// What it needs.
        needs: &'static str,
    },
    /// The node must run for this operation.
    NotRunning {
        /// The operation.
        operation: &'static str,
        /// The node.
        node: usize,
    },
    /// The operation needs the current primary to run.
    PrimaryDown {
        /// The operation.
        operation: &'static str,
        /// The current primary.
        primary: usize,
    },
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSuchNode { node, len } => {
                write!(
                    f,
                    "node {node} does not exist (the cluster has nodes 0..{len})"
                )
            }
            Self::WrongRole {
                operation,
                node,
                role,
                needs,
            } => write!(
                f,
                "cannot {operation} node {node}: it is {role}, expected {needs}"
            ),
            Self::NotRunning { operation, node } => {
                write!(
                    f,
                    "cannot {operation} node {node}: it is stopped (start it first)"
                )
            }
            Self::PrimaryDown { operation, primary } => write!(
                f,
                "cannot {operation}: the primary (node {primary}) is stopped (start it first)"
            ),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Primary => f.write_str("the primary"),
            Self::Standby { upstream } => write!(f, "a standby of node {upstream}"),
            Self::Former => f.write_str("a former primary (rewind it to re-attach)"),
        }
    }
}

/// The books of a cluster of `len` nodes: node 0 starts as primary, the
/// others as its standbys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    nodes: Vec<NodeState>,
    primary: usize,
    /// Bumped by every promotion (PostgreSQL's timeline goes up too).
    promotions: u32,
}

impl Topology {
    /// A fresh cluster: node 0 primary, nodes 1.. standbys of it, all running.
    pub fn new(len: usize) -> Self {
        let nodes = (0..len.max(1))
            .map(|i| NodeState {
                role: if i == 0 {
                    Role::Primary
                } else {
                    Role::Standby { upstream: 0 }
                },
                running: true,
                partitioned: false,
            })
            .collect();
        Self {
            nodes,
            primary: 0,
            promotions: 0,
        }
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false: a cluster has at least its primary.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The node the cluster calls primary.
    pub fn primary(&self) -> usize {
        self.primary
    }

    /// How many promotions happened.
    pub fn promotions(&self) -> u32 {
        self.promotions
    }

    /// One node's books.
    pub fn node(&self, node: usize) -> Result<NodeState, Refused> {
        self.nodes.get(node).copied().ok_or(Refused::NoSuchNode {
            node,
            len: self.nodes.len(),
        })
    }

    /// Standbys of the current primary, in index order.
    pub fn standbys(&self) -> Vec<usize> {
        self.indexed()
            .filter(|(_, n)| {
                n.role
                    == Role::Standby {
                        upstream: self.primary,
                    }
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// Standbys that can be expected to catch up with the primary now:
    /// running, not cut off, streaming from the current primary.
    pub fn streaming(&self) -> Vec<usize> {
        let primary = self.nodes[self.primary];
        if !primary.running || primary.partitioned {
            return Vec::new();
        }
        self.standbys()
            .into_iter()
            .filter(|&i| self.nodes[i].running && !self.nodes[i].partitioned)
            .collect()
    }

    fn indexed(&self) -> impl Iterator<Item = (usize, &NodeState)> {
        self.nodes.iter().enumerate()
    }

    /// Checks that `node` may be promoted: a running standby.
    pub fn check_promote(&self, node: usize) -> Result<(), Refused> {
        let state = self.node(node)?;
        if !matches!(state.role, Role::Standby { .. }) {
            return Err(Refused::WrongRole {
                operation: "promote",
                node,
                role: state.role,
                needs: "a standby",
            });
        }
        if !state.running {
            return Err(Refused::NotRunning {
                operation: "promote",
                node,
            });
        }
        Ok(())
    }

    /// Books a promotion of `node`; returns the former primary. Standbys of
    /// the former primary keep streaming from it (PostgreSQL does not move
    /// them by itself).
    pub fn promoted(&mut self, node: usize) -> Result<usize, Refused> {
        self.check_promote(node)?;
        let former = self.primary;
        self.nodes[former].role = Role::Former;
        self.nodes[node].role = Role::Primary;
        self.primary = node;
        self.promotions += 1;
        Ok(former)
    }

    /// Checks that `node` may be re-attached as a standby of the current
    /// primary (`pg_rewind`): a former primary or a standby of another
    /// node, while the primary runs.
    pub fn check_rewind(&self, node: usize) -> Result<(), Refused> {
        let state = self.node(node)?;
        let attachable = match state.role {
            Role::Former => true,
            Role::Standby { upstream } => upstream != self.primary,
            Role::Primary => false,
        };
        if !attachable {
            return Err(Refused::WrongRole {
                operation: "rewind",
                node,
                role: state.role,
                needs: "a former primary or a standby of a node that is no longer primary",
            });
        }
        if !self.nodes[self.primary].running {
            return Err(Refused::PrimaryDown {
                operation: "rewind",
                primary: self.primary,
            });
        }
        Ok(())
    }

    /// Books `node` as a running standby of the current primary.
    pub fn rewound(&mut self, node: usize) -> Result<(), Refused> {
        self.check_rewind(node)?;
        self.nodes[node].role = Role::Standby {
            upstream: self.primary,
        };
        self.nodes[node].running = true;
        Ok(())
    }

    /// Books a start (idempotent).
    pub fn started(&mut self, node: usize) -> Result<(), Refused> {
        self.node(node)?;
        self.nodes[node].running = true;
        Ok(())
    }

    /// Books a stop or a kill (idempotent).
    pub fn stopped(&mut self, node: usize) -> Result<(), Refused> {
        self.node(node)?;
        self.nodes[node].running = false;
        Ok(())
    }

    /// Books a partition (`true`) or a heal (`false`); returns whether it
    /// changed anything.
    pub fn set_partitioned(&mut self, node: usize, cut: bool) -> Result<bool, Refused> {
        self.node(node)?;
        let changed = self.nodes[node].partitioned != cut;
        self.nodes[node].partitioned = cut;
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_with_node_zero_primary_and_the_rest_streaming() {
        let t = Topology::new(3);
        assert_eq!(t.primary(), 0);
        assert_eq!(t.standbys(), vec![1, 2]);
        assert_eq!(t.streaming(), vec![1, 2]);
        assert_eq!(t.node(1).unwrap().role, Role::Standby { upstream: 0 });
        assert_eq!(t.node(3), Err(Refused::NoSuchNode { node: 3, len: 3 }));
    }

    #[test]
    fn promotion_moves_the_primary_and_leaves_a_former_one() {
        let mut t = Topology::new(3);
        assert_eq!(t.promoted(1), Ok(0));
        assert_eq!(t.primary(), 1);
        assert_eq!(t.promotions(), 1);
        assert_eq!(t.node(0).unwrap().role, Role::Former);
        // Node 2 still streams from node 0, not from the new primary.
        assert_eq!(t.node(2).unwrap().role, Role::Standby { upstream: 0 });
        assert!(t.standbys().is_empty());
        assert!(t.streaming().is_empty());
    }

    #[test]
    fn only_running_standbys_can_be_promoted() {
        let mut t = Topology::new(2);
        let err = t.promoted(0).unwrap_err();
        assert!(err.to_string().contains("expected a standby"), "{err}");
        t.stopped(1).unwrap();
        let err = t.promoted(1).unwrap_err();
        assert_eq!(
            err,
            Refused::NotRunning {
                operation: "promote",
                node: 1
            }
        );
        assert_eq!(t.primary(), 0, "a refused promotion changes nothing");
    }

    #[test]
    fn rewind_reattaches_former_primaries_and_orphaned_standbys() {
        let mut t = Topology::new(3);
        t.promoted(2).unwrap();
        // Node 1 streams from node 0, which is no longer primary.
        t.rewound(1).unwrap();
        t.rewound(0).unwrap();
        assert_eq!(t.standbys(), vec![0, 1]);
        let err = t.rewound(2).unwrap_err();
        assert!(matches!(err, Refused::WrongRole { node: 2, .. }), "{err}");
        let err = t.rewound(0).unwrap_err();
        assert!(
            err.to_string().contains("no longer primary"),
            "a standby of the primary needs no rewind: {err}"
        );
    }

    #[test]
    fn rewind_needs_the_primary_running() {
        let mut t = Topology::new(2);
        t.promoted(1).unwrap();
        t.stopped(1).unwrap();
        assert_eq!(
            t.rewound(0),
            Err(Refused::PrimaryDown {
                operation: "rewind",
                primary: 1
            })
        );
    }

    #[test]
    fn stopped_or_partitioned_nodes_are_not_expected_to_catch_up() {
        let mut t = Topology::new(4);
        t.stopped(1).unwrap();
        assert!(t.set_partitioned(2, true).unwrap());
        assert!(!t.set_partitioned(2, true).unwrap(), "idempotent");
        assert_eq!(t.streaming(), vec![3]);
        t.set_partitioned(0, true).unwrap();
        assert!(t.streaming().is_empty(), "the primary itself is cut off");
        t.set_partitioned(0, false).unwrap();
        t.set_partitioned(2, false).unwrap();
        t.started(1).unwrap();
        assert_eq!(t.streaming(), vec![1, 2, 3]);
    }
}
