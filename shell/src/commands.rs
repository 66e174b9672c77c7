//! Dot commands: parsing and help.

use std::path::PathBuf;

use dqlite_tokio::NodeRole;

use crate::args::parse_switch;
use crate::format::Mode;

/// A node named by id or by address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeRef {
    /// A raft node id.
    Id(u64),
    /// A node address as the cluster knows it.
    Address(String),
}

/// A parsed dot command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `.help`
    Help,
    /// `.quit` or `.exit`
    Quit,
    /// `.mode MODE`
    Mode(Mode),
    /// `.headers on|off`
    Headers(bool),
    /// `.timer on|off`
    Timer(bool),
    /// `.leader`
    Leader,
    /// `.cluster`
    Cluster,
    /// `.describe ADDR`
    Describe(String),
    /// `.weight ADDR N`
    Weight(String, u64),
    /// `.transfer ID`
    Transfer(u64),
    /// `.add ID ADDR`
    Add(u64, String),
    /// `.assign ID ROLE`
    Assign(u64, NodeRole),
    /// `.remove ID|ADDR`
    Remove(NodeRef),
    /// `.dump [DIR]`
    Dump(Option<PathBuf>),
    /// `.tables`
    Tables,
    /// `.schema [TABLE]`
    Schema(Option<String>),
}

/// The text `.help` prints.
pub const HELP: &str = "\
SQL statements end with `;` and may span lines. Dot commands take one line:
.help                 this text
.quit, .exit          leave the shell (Ctrl-D does too)
.mode MODE            output mode: table, csv, json, line, tabs
.headers on|off       column headers in table, csv and tabs modes
.timer on|off         show how long each statement took
.tables               list the tables
.schema [TABLE]       show the CREATE statements (of one table)
.leader               the leader's id and address
.cluster              every node: id, address, role
.describe ADDR        a node's failure domain and weight
.weight ADDR N        set a node's weight
.transfer ID          hand leadership to node ID (decimal, or hex after 0x)
.add ID ADDR          add a node (as a spare)
.assign ID ROLE       give node ID a role: voter, standby, spare
.remove ID|ADDR       remove a node from the cluster
.dump [DIR]           write the database's files into DIR (default: here)
Ctrl-C stops the running statement, or clears the line at the prompt.";

/// Parses a dot command line (with its leading `.`).
pub fn parse(line: &str) -> Result<Command, String> {
    let mut words = line.split_whitespace();
    let name = words.next().unwrap_or(".");
    let args: Vec<&str> = words.collect();
    let usage = |u: &str| Err(format!("usage: {u}"));
    let id = |s: &str| node_id(s).ok_or_else(|| format!("`{s}` is not a node id (a number)"));
    match (name.to_ascii_lowercase().as_str(), args.as_slice()) {
        (".help", []) => Ok(Command::Help),
        (".quit" | ".exit", []) => Ok(Command::Quit),
        (".mode", [m]) => Ok(Command::Mode(m.parse()?)),
        (".mode", _) => usage(&format!(".mode MODE (one of: {})", Mode::NAMES)),
        (".headers", [s]) => Ok(Command::Headers(parse_switch(s)?)),
        (".headers", _) => usage(".headers on|off"),
        (".timer", [s]) => Ok(Command::Timer(parse_switch(s)?)),
        (".timer", _) => usage(".timer on|off"),
        (".leader", []) => Ok(Command::Leader),
        (".cluster", []) => Ok(Command::Cluster),
        (".describe", [a]) => Ok(Command::Describe(a.to_string())),
        (".describe", _) => usage(".describe ADDR"),
        (".weight", [a, n]) => {
            let n = n
                .parse()
                .map_err(|_| format!("`{n}` is not a weight (a number)"))?;
            Ok(Command::Weight(a.to_string(), n))
        }
        (".weight", _) => usage(".weight ADDR N"),
        (".transfer", [i]) => Ok(Command::Transfer(id(i)?)),
        (".transfer", _) => usage(".transfer ID"),
        (".add", [i, a]) => Ok(Command::Add(id(i)?, a.to_string())),
        (".add", _) => usage(".add ID ADDR"),
        (".assign", [i, r]) => Ok(Command::Assign(id(i)?, role(r)?)),
        (".assign", _) => usage(".assign ID voter|standby|spare"),
        (".remove", [n]) => Ok(Command::Remove(match node_id(n) {
            Some(i) => NodeRef::Id(i),
            None => NodeRef::Address(n.to_string()),
        })),
        (".remove", _) => usage(".remove ID|ADDR"),
        (".dump", []) => Ok(Command::Dump(None)),
        (".dump", [d]) => Ok(Command::Dump(Some(PathBuf::from(d)))),
        (".dump", _) => usage(".dump [DIR]"),
        (".tables", []) => Ok(Command::Tables),
        (".schema", []) => Ok(Command::Schema(None)),
        (".schema", [t]) => Ok(Command::Schema(Some(t.to_string()))),
        (".schema", _) => usage(".schema [TABLE]"),
        (".help" | ".quit" | ".exit" | ".leader" | ".cluster" | ".tables", [_, ..]) => {
            Err(format!("{name} takes no arguments"))
        }
        _ => Err(format!("unknown command {name} (try .help)")),
    }
}

/// A node id in decimal, or in hexadecimal after `0x` (as go-dqlite's shell prints them).
fn node_id(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

fn role(s: &str) -> Result<NodeRole, String> {
    match s.to_ascii_lowercase().as_str() {
        "voter" => Ok(NodeRole::Voter),
        "standby" => Ok(NodeRole::Standby),
        "spare" => Ok(NodeRole::Spare),
        _ => Err(format!("unknown role `{s}` (roles: voter, standby, spare)")),
    }
}

/// A role's name as the commands spell it.
pub fn role_name(role: Option<NodeRole>) -> &'static str {
    match role {
        Some(NodeRole::Voter) => "voter",
        Some(NodeRole::Standby) => "standby",
        Some(NodeRole::Spare) => "spare",
        None => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!(parse(".help"), Ok(Command::Help));
        assert_eq!(parse(".EXIT"), Ok(Command::Quit));
        assert_eq!(parse(".mode  json"), Ok(Command::Mode(Mode::Json)));
        assert_eq!(parse(".headers off"), Ok(Command::Headers(false)));
        assert_eq!(parse(".timer on"), Ok(Command::Timer(true)));
        assert_eq!(
            parse(".weight 127.0.0.1:9001 3"),
            Ok(Command::Weight("127.0.0.1:9001".into(), 3))
        );
        assert_eq!(parse(".transfer 2"), Ok(Command::Transfer(2)));
        assert_eq!(parse(".transfer 0x2dc1"), Ok(Command::Transfer(0x2dc1)));
        assert_eq!(parse(".remove 0XfF"), Ok(Command::Remove(NodeRef::Id(255))));
        assert_eq!(parse(".add 4 @node4"), Ok(Command::Add(4, "@node4".into())));
        assert_eq!(
            parse(".assign 4 standby"),
            Ok(Command::Assign(4, NodeRole::Standby))
        );
        assert_eq!(parse(".remove 4"), Ok(Command::Remove(NodeRef::Id(4))));
        assert_eq!(
            parse(".remove 127.0.0.1:9004"),
            Ok(Command::Remove(NodeRef::Address("127.0.0.1:9004".into())))
        );
        assert_eq!(
            parse(".dump /tmp/x"),
            Ok(Command::Dump(Some("/tmp/x".into())))
        );
        assert_eq!(parse(".schema t"), Ok(Command::Schema(Some("t".into()))));
    }

    #[test]
    fn bad_commands_say_why() {
        assert!(parse(".frobnicate")
            .unwrap_err()
            .contains("unknown command .frobnicate"));
        assert!(parse(".").unwrap_err().contains("unknown command"));
        assert!(parse(".mode").unwrap_err().contains("usage: .mode"));
        assert!(parse(".mode xml").unwrap_err().contains("unknown mode"));
        assert!(parse(".weight a").unwrap_err().contains("usage"));
        assert!(parse(".weight a -1").unwrap_err().contains("not a weight"));
        assert!(parse(".transfer x").unwrap_err().contains("not a node id"));
        assert!(parse(".assign 2 king")
            .unwrap_err()
            .contains("unknown role"));
        assert!(parse(".cluster now")
            .unwrap_err()
            .contains("takes no arguments"));
        assert!(parse(".headers maybe").is_err());
    }

    #[test]
    fn help_lists_every_command() {
        for c in [
            ".leader",
            ".cluster",
            ".describe",
            ".weight",
            ".transfer",
            ".add",
            ".assign",
            ".remove",
            ".dump",
            ".tables",
            ".schema",
            ".mode",
            ".headers",
            ".timer",
            ".quit",
        ] {
            assert!(HELP.contains(c), "{c}");
        }
    }
}
