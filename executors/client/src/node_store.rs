//! The cluster's membership kept in a file, in the YAML layout go-dqlite's node store and
//! `dqlite-demo` write (`cluster.yaml` in a node's data directory), so an application
//! restarted after membership changes still finds the cluster.
//!
//! ```yaml
//! - Address: 127.0.0.1:9001
//!   ID: 3297041220608546238
//!   Role: 0
//! ```

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use dqlite_proto::discovery::Node;
use dqlite_proto::NodeRole;

use crate::error::{Error, Result};

/// A file holding the cluster's nodes (see [`PoolOptions::node_store`](crate::PoolOptions::node_store)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStore {
    path: PathBuf,
}

impl NodeStore {
    /// The store in the file at `path` (which need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> NodeStore {
        NodeStore { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The nodes in the file; none when it does not exist. A file that is not in the node
    /// store's layout is [`Error::NodeStore`].
    pub fn load(&self) -> Result<Vec<Node>> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => parse(&text).map_err(|reason| self.error(reason)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(self.error(e.to_string())),
        }
    }

    /// Replaces the file's content with `nodes`, atomically: a reader sees the old list or
    /// the new one, never a mix (written to a temporary file beside it, then renamed).
    pub fn save(&self, nodes: &[Node]) -> Result<()> {
        let text = render(nodes);
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(format!(".tmp{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let written = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(self.error(e.to_string()));
        }
        Ok(())
    }

    fn error(&self, reason: String) -> Error {
        Error::NodeStore {
            path: self.path.display().to_string(),
            reason,
        }
    }
}

/// The YAML text for `nodes`, addresses quoted (an address such as `@name` needs it).
fn render(nodes: &[Node]) -> String {
    if nodes.is_empty() {
        return "[]\n".to_owned();
    }
    let mut out = String::new();
    for n in nodes {
        // An unknown role is written as a voter's, as go-dqlite does for a zero role.
        let role = n.role.map_or(0, NodeRole::code);
        let address = n.address.replace('\'', "''");
        let _ = write!(
            out,
            "- Address: '{address}'\n  ID: {}\n  Role: {role}\n",
            n.id
        );
    }
    out
}

/// Reads the node store's layout: a YAML sequence of mappings with `Address`, `ID` and
/// `Role` (`[]` for none). Other keys are ignored; a missing address is an error.
fn parse(text: &str) -> std::result::Result<Vec<Node>, String> {
    let mut nodes: Vec<Node> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        let content = line.trim_start();
        if content.is_empty() || content.starts_with('#') || content == "[]" {
            continue;
        }
        let at = |what: &str| format!("line {}: {what}: {raw:?}", i + 1);
        let entry = if let Some(rest) = content.strip_prefix("- ") {
            nodes.push(Node::new(String::new()));
            rest
        } else if content == "-" {
            nodes.push(Node::new(String::new()));
            continue;
        } else if line.starts_with(' ') && !nodes.is_empty() {
            content
        } else {
            return Err(at("expected a `- ` list entry"));
        };
        let (key, value) = entry
            .split_once(':')
            .ok_or_else(|| at("expected `Key: value`"))?;
        let value = scalar(value.trim()).ok_or_else(|| at("unterminated quoted value"))?;
        let Some(node) = nodes.last_mut() else {
            return Err(at("a key outside any entry"));
        };
        match key.trim() {
            "Address" => node.address = value,
            "ID" => {
                node.id = value
                    .parse()
                    .map_err(|_| at("ID is not an unsigned integer"))?
            }
            "Role" => {
                let role = value.parse().ok().and_then(NodeRole::from_code);
                node.role = Some(role.ok_or_else(|| at("Role is not 0, 1 or 2"))?);
            }
            _ => {}
        }
    }
    if let Some(n) = nodes.iter().position(|n| n.address.is_empty()) {
        return Err(format!("entry {} has no Address", n + 1));
    }
    Ok(nodes)
}

/// A YAML scalar: plain, 'single-quoted' ('' escapes a quote) or "double-quoted" (no
/// escapes needed for node addresses). `None` for an unterminated quote.
fn scalar(value: &str) -> Option<String> {
    if let Some(rest) = value.strip_prefix('\'') {
        return rest.strip_suffix('\'').map(|v| v.replace("''", "'"));
    }
    if let Some(rest) = value.strip_prefix('"') {
        return rest.strip_suffix('"').map(str::to_owned);
    }
    Some(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_dqlite_demo_writes() {
        let text = "- Address: '@dqtest1'\n  ID: 3297041220608546238\n  Role: 0\n\
                    - Address: 127.0.0.1:9002\n  ID: 2\n  Role: 2\n";
        let nodes = parse(text).unwrap();
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[0].address, "@dqtest1");
        assert_eq!(nodes[0].id, 3297041220608546238);
        assert_eq!(nodes[0].role, Some(NodeRole::Voter));
        assert_eq!(
            (nodes[1].address.as_str(), nodes[1].role),
            ("127.0.0.1:9002", Some(NodeRole::Spare))
        );
        assert_eq!(parse("[]\n").unwrap(), Vec::<Node>::new());
        assert_eq!(parse(&render(&nodes)).unwrap(), nodes);
        assert_eq!(parse(&render(&[])).unwrap(), Vec::<Node>::new());
    }

    #[test]
    fn malformed_files_say_where() {
        for (text, needle) in [
            ("Address: x\n", "line 1"),
            ("- Address: 'x\n", "unterminated"),
            ("- Address: x\n  ID: -1\n", "ID"),
            ("- Address: x\n  Role: 7\n", "Role"),
            ("- ID: 1\n", "no Address"),
            ("- Address x\n", "Key: value"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn saves_atomically_and_loads_back() {
        let dir = std::env::temp_dir().join(format!("dqlite-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = NodeStore::new(dir.join("cluster.yaml"));
        assert!(
            store.load().unwrap().is_empty(),
            "a missing file holds no nodes"
        );
        let nodes = vec![Node {
            address: "it's:1".into(),
            id: 7,
            role: Some(NodeRole::Standby),
        }];
        store.save(&nodes).unwrap();
        assert_eq!(store.load().unwrap(), nodes);
        std::fs::write(store.path(), "not: [a store").unwrap();
        assert!(matches!(store.load(), Err(Error::NodeStore { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
