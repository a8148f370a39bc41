//! `cephlock sm`: the MDS lock state machines, exported, shown and drawn from `lock-sm`'s data.
//!
//! Everything printed here is computed from the `const` tables, never written by hand, so an
//! export that agrees with the spec cell by cell is evidence the tables do too, and the
//! diagrams in `docs/` cannot drift from the code (a test regenerates them).

use std::io::Write;

use clap::{Args, Subcommand, ValueEnum};
use lock_sm::transitions::{initiated_edges, next_edges};
use lock_sm::{LockState, LockType, Machine, Perm, StateRow};

use crate::CliError;

/// The `sm` subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum SmCommand {
    /// Print the state tables (or the lock types) as CSV or JSON.
    Export(ExportArgs),
    /// Print one machine's table aligned for a terminal.
    Show(ShowArgs),
    /// Print one machine's transition graph as Graphviz DOT or Mermaid.
    Diagram(DiagramArgs),
}

/// Output formats for `sm export`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ExportFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// A JSON array of objects keyed by the CSV column names.
    Json,
}

/// Arguments of `sm export`.
#[derive(Args, Debug)]
pub(crate) struct ExportArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
    format: ExportFormat,
    /// Export the lock types (value, machine, cap shift) instead of the state tables.
    #[arg(long)]
    lock_types: bool,
}

/// Arguments of `sm show`.
#[derive(Args, Debug)]
pub(crate) struct ShowArgs {
    /// simplelock, scatterlock, filelock or locallock (short forms such as `file` work too).
    machine: String,
    /// Show only this state (by name such as `SYNC_LOCK`, or log name such as `sync->lock`).
    #[arg(long)]
    state: Option<String>,
}

/// Diagram languages for `sm diagram`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum DiagramFormat {
    /// Graphviz DOT (render with `dot -Tsvg`).
    Dot,
    /// A Mermaid `stateDiagram-v2` (renders in Markdown viewers that support Mermaid).
    Mermaid,
}

/// Arguments of `sm diagram`.
#[derive(Args, Debug)]
pub(crate) struct DiagramArgs {
    /// simplelock, scatterlock, filelock or locallock.
    machine: String,
    /// Output language.
    #[arg(long, value_enum, default_value_t = DiagramFormat::Dot)]
    format: DiagramFormat,
}

pub(crate) fn run(cmd: &SmCommand, out: &mut dyn Write) -> Result<(), CliError> {
    match cmd {
        SmCommand::Export(args) => {
            let text = match (args.format, args.lock_types) {
                (ExportFormat::Csv, false) => states_csv(),
                (ExportFormat::Csv, true) => lock_types_csv(),
                (ExportFormat::Json, false) => json_lines(&states_json()),
                (ExportFormat::Json, true) => json_lines(&lock_types_json()),
            };
            out.write_all(text.as_bytes())?;
        }
        SmCommand::Show(args) => {
            let m = parse_machine(&args.machine)?;
            let only = args.state.as_deref().map(|s| parse_state(m, s)).transpose()?;
            out.write_all(show(m, only).as_bytes())?;
        }
        SmCommand::Diagram(args) => {
            let m = parse_machine(&args.machine)?;
            let text = match args.format {
                DiagramFormat::Dot => dot(m),
                DiagramFormat::Mermaid => mermaid(m),
            };
            out.write_all(text.as_bytes())?;
        }
    }
    Ok(())
}

fn parse_machine(name: &str) -> Result<Machine, CliError> {
    Machine::from_name(name).ok_or_else(|| {
        let known: Vec<_> = Machine::ALL.iter().map(|m| m.name()).collect();
        CliError::Usage(format!("unknown machine {name:?} (expected one of: {})", known.join(", ")))
    })
}

fn parse_state(m: Machine, name: &str) -> Result<LockState, CliError> {
    let s = LockState::from_name(name)
        .ok_or_else(|| CliError::Usage(format!("unknown lock state {name:?} (e.g. SYNC, sync->lock)")))?;
    if !m.has_row(s) {
        return Err(CliError::Usage(format!("{} has no row for state {}", m.name(), s.name())));
    }
    Ok(s)
}

/// The CSV header of the state export; the column set is a documented contract.
pub(crate) const STATES_HEADER: &str = "machine,state_id,state,next,loner,replica_state,can_read,\
can_read_projected,can_rdlock,can_wrlock,can_force_wrlock,can_lease,can_xlock,caps,loner_caps,\
xlocker_caps,replica_caps";

/// Every (machine, state) pair that has a row in Ceph's tables, in export order.
fn rows() -> impl Iterator<Item = (Machine, LockState, &'static StateRow)> {
    Machine::ALL.into_iter().flat_map(|m| m.states_with_rows().map(move |s| (m, s, m.row(s))))
}

/// `next` as exported: `-` for a stable state.
fn next_name(row: &StateRow) -> &'static str {
    if row.is_stable() { "-" } else { row.next.name() }
}

fn perms(row: &StateRow) -> [(&'static str, Perm); 7] {
    [
        ("can_read", row.can_read),
        ("can_read_projected", row.can_read_projected),
        ("can_rdlock", row.can_rdlock),
        ("can_wrlock", row.can_wrlock),
        ("can_force_wrlock", row.can_force_wrlock),
        ("can_lease", row.can_lease),
        ("can_xlock", row.can_xlock),
    ]
}

fn caps(row: &StateRow) -> [(&'static str, u32); 4] {
    [
        ("caps", row.caps),
        ("loner_caps", row.loner_caps),
        ("xlocker_caps", row.xlocker_caps),
        ("replica_caps", row.replica_caps),
    ]
}

fn states_csv() -> String {
    let mut s = String::from(STATES_HEADER);
    s.push('\n');
    for (m, state, row) in rows() {
        let mut cells = vec![
            m.name().to_string(),
            state.id().to_string(),
            state.name().to_string(),
            next_name(row).to_string(),
            u8::from(row.loner).to_string(),
            row.replica_state.name().to_string(),
        ];
        cells.extend(perms(row).iter().map(|(_, p)| p.symbol().to_string()));
        cells.extend(caps(row).iter().map(|(_, c)| c.to_string()));
        s.push_str(&cells.join(","));
        s.push('\n');
    }
    s
}

fn states_json() -> Vec<serde_json::Value> {
    rows()
        .map(|(m, state, row)| {
            let mut obj = serde_json::Map::new();
            obj.insert("machine".into(), m.name().into());
            obj.insert("state_id".into(), state.id().into());
            obj.insert("state".into(), state.name().into());
            obj.insert("next".into(), next_name(row).into());
            obj.insert("loner".into(), u8::from(row.loner).into());
            obj.insert("replica_state".into(), row.replica_state.name().into());
            for (k, p) in perms(row) {
                obj.insert(k.into(), p.symbol().into());
            }
            for (k, c) in caps(row) {
                obj.insert(k.into(), c.into());
            }
            serde_json::Value::Object(obj)
        })
        .collect()
}

fn lock_types_csv() -> String {
    let mut s = String::from("lock_type,value,machine,cap_shift\n");
    for lt in LockType::ALL {
        s.push_str(&format!("{},{},{},{}\n", lt.name(), lt.value(), lt.machine().name(), lt.cap_shift()));
    }
    s
}

fn lock_types_json() -> Vec<serde_json::Value> {
    LockType::ALL
        .iter()
        .map(|lt| {
            serde_json::json!({
                "lock_type": lt.name(),
                "value": lt.value(),
                "machine": lt.machine().name(),
                "cap_shift": lt.cap_shift(),
            })
        })
        .collect()
}

fn json_lines(values: &[serde_json::Value]) -> String {
    let mut s = serde_json::to_string_pretty(values).expect("JSON values always serialize");
    s.push('\n');
    s
}

/// Generic caps as letters (`scrl`), or `-` for none; easier to read in a terminal than 141.
fn gcaps(c: u32) -> String {
    lock_sm::caps::format_generic(c)
}

fn show(m: Machine, only: Option<LockState>) -> String {
    let def = m.def();
    let mut s = format!(
        "{}: allowed_ever_auth={} allowed_ever_replica={} careful={} can_remote_xlock={}\n",
        m.name(),
        gcaps(def.allowed_ever_auth),
        gcaps(def.allowed_ever_replica),
        gcaps(def.careful),
        u8::from(def.can_remote_xlock),
    );
    let used_by: Vec<_> = LockType::ALL.iter().filter(|lt| lt.machine() == m).map(|lt| lt.name()).collect();
    s.push_str(&format!("used by: {}\n\n", used_by.join(", ")));
    let header = [
        "id", "state", "next", "loner", "replica", "read", "rd_proj", "rdlock", "wrlock", "force_wr",
        "lease", "xlock", "caps", "loner", "xlocker", "replica",
    ];
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for state in m.states_with_rows().filter(|st| only.is_none_or(|o| o == *st)) {
        let row = m.row(state);
        let mut cells = vec![
            state.id().to_string(),
            state.name().to_string(),
            next_name(row).to_string(),
            if row.loner { "yes" } else { "no" }.to_string(),
            row.replica_state.name().to_string(),
        ];
        cells.extend(perms(row).iter().map(|(_, p)| p.symbol().to_string()));
        cells.extend(caps(row).iter().map(|(_, c)| gcaps(*c)));
        table.push(cells);
    }
    let widths: Vec<usize> =
        (0..header.len()).map(|i| table.iter().map(|r| r[i].len()).max().unwrap_or(0)).collect();
    for (i, row) in table.iter().enumerate() {
        let line: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        s.push_str(line.join("  ").trim_end());
        s.push('\n');
        if i == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            s.push_str(&rule.join("  "));
            s.push('\n');
        }
    }
    s.push_str(
        "\nPermissions: 0 never, ANY anywhere, AUTH on the auth MDS only, XCL the xlocking (or, for\n",
    );
    s.push_str(
        "wrlock, the loner) client only, REQ never locally: a replica asks the auth. Caps are generic\n",
    );
    s.push_str("letters (s shared, x excl, c cache, r read, w write, b buffer, a wrextend, l lazyio).\n");
    s
}

/// The states a diagram draws: every state with a row in the machine's table.
fn diagram_states(m: Machine) -> Vec<LockState> {
    m.states_with_rows().collect()
}

fn dot(m: Machine) -> String {
    let mut s = format!("// Generated by `cephlock sm diagram {} --format dot`; do not edit.\n", m.name());
    s.push_str(&format!("digraph {} {{\n", m.name()));
    s.push_str("  rankdir=LR;\n");
    s.push_str(&format!(
        "  label=\"{}: stable states boxed; solid edges follow `next`, dashed edges are started by \
         the Locker\";\n",
        m.name()
    ));
    s.push_str("  labelloc=t;\n  fontname=\"Helvetica\";\n");
    s.push_str(
        "  node [fontname=\"Helvetica\", fontsize=11];\n  edge [fontname=\"Helvetica\", fontsize=9];\n",
    );
    for state in diagram_states(m) {
        let row = m.row(state);
        let shape = if row.is_stable() {
            "shape=box, style=\"rounded,filled,bold\", fillcolor=\"#dbe9f6\""
        } else {
            "shape=ellipse"
        };
        s.push_str(&format!(
            "  {} [label=\"{}\\n{}\", {}];\n",
            state.name(),
            state.name(),
            state.log_name(),
            shape
        ));
    }
    for (from, to) in next_edges(m) {
        s.push_str(&format!("  {} -> {};\n", from.name(), to.name()));
    }
    for edge in initiated_edges(m) {
        s.push_str(&format!(
            "  {} -> {} [style=dashed, color=\"#1f5fa8\", fontcolor=\"#1f5fa8\", label=\"{}\"];\n",
            edge.from.name(),
            edge.to.name(),
            edge.via.name()
        ));
    }
    s.push_str("}\n");
    s
}

fn mermaid(m: Machine) -> String {
    let mut s =
        format!("%% Generated by `cephlock sm diagram {} --format mermaid`; do not edit.\n", m.name());
    s.push_str("stateDiagram-v2\n  direction LR\n");
    s.push_str("  classDef stable font-weight:bold,fill:#dbe9f6\n");
    for state in diagram_states(m) {
        s.push_str(&format!("  state \"{} ({})\" as {}\n", state.name(), state.log_name(), state.name()));
    }
    for (from, to) in next_edges(m) {
        s.push_str(&format!("  {} --> {} : next\n", from.name(), to.name()));
    }
    for edge in initiated_edges(m) {
        s.push_str(&format!("  {} --> {} : {}\n", edge.from.name(), edge.to.name(), edge.via.name()));
    }
    let stable: Vec<_> =
        diagram_states(m).into_iter().filter(|st| m.row(*st).is_stable()).map(|st| st.name()).collect();
    if !stable.is_empty() {
        s.push_str(&format!("  class {} stable\n", stable.join(",")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed diagram sources in docs/ must be exactly what the generator prints, so
    /// the pictures in the README always show the tables as they are.
    #[test]
    fn committed_diagrams_are_current() {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/diagrams");
        for m in Machine::ALL {
            let path = docs.join(format!("{}.dot", m.name()));
            let committed = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}; run scripts/render-diagrams.sh", path.display()));
            assert_eq!(committed, dot(m), "{} is stale; run scripts/render-diagrams.sh", path.display());
        }
    }

    #[test]
    fn csv_has_one_line_per_row_plus_header() {
        let n: usize = Machine::ALL.iter().map(|m| m.states_with_rows().count()).sum();
        assert_eq!(states_csv().lines().count(), n + 1);
        assert_eq!(states_csv().lines().next(), Some(STATES_HEADER));
    }

    #[test]
    fn json_export_mirrors_csv_columns() {
        let header: Vec<&str> = STATES_HEADER.split(',').collect();
        for value in states_json() {
            let obj = value.as_object().expect("object per row");
            let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
            for h in &header {
                assert!(keys.contains(h), "missing {h}");
            }
            assert_eq!(keys.len(), header.len());
        }
    }

    #[test]
    fn unknown_names_are_usage_errors() {
        assert!(matches!(parse_machine("nosuchlock"), Err(CliError::Usage(_))));
        assert!(matches!(parse_state(Machine::Simple, "NOPE"), Err(CliError::Usage(_))));
        // MIX exists as a state but simplelock has no row for it (§1.3).
        assert!(matches!(parse_state(Machine::Simple, "MIX"), Err(CliError::Usage(_))));
        assert_eq!(parse_state(Machine::File, "sync->mix").ok(), Some(LockState::SyncMix));
    }
}
