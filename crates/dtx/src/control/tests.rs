//! The control protocol end to end over a temporary socket, with real Managers on the
//! in-memory transport.

use std::os::unix::fs::PermissionsExt;

use anyhow::{Context, ensure};
use datatransfer::{ChannelStatus, EventCode, TransferId};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::*;
use crate::testing::{
    Dag, LineSink, PATIENCE, TestNode, Ticket, everything, hub, node, until_line, until_status,
};

/// A control server for `target` in a fresh temporary data directory.
async fn served(target: &TestNode) -> anyhow::Result<(tempfile::TempDir, ControlServer)> {
    let dir = tempfile::tempdir()?;
    let target: Arc<dyn ControlTarget> = Arc::new(target.manager.clone());
    let server = serve(&socket_path(dir.path()), target).await?;
    Ok((dir, server))
}

/// Two nodes; the second holds `dag`.
async fn pair(
    dag: &Dag,
) -> anyhow::Result<(
    TestNode,
    TestNode,
    datatransfer_transport::mem::MemHub<crate::testing::Blocks>,
)> {
    let hub = hub();
    let client = node(&hub, 1).await?;
    let provider = node(&hub, 2).await?;
    dag.load_into(&provider.blocks).await?;
    Ok((client, provider, hub))
}

fn parse_lines(output: &[u8]) -> anyhow::Result<Vec<serde_json::Value>> {
    std::str::from_utf8(output)?
        .lines()
        .map(|line| serde_json::from_str(line).with_context(|| format!("not JSON: {line}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_lists_every_channel_as_table_or_json() -> anyhow::Result<()> {
    let dag = Dag::new(4, 300, 1)?;
    let (client, provider, _hub) = pair(&dag).await?;
    let (dir, _server) = served(&client).await?;

    let mut empty = Vec::new();
    channels_to(dir.path(), false, false, &mut empty, std::future::pending()).await?;
    ensure!(String::from_utf8(empty)? == "no channels\n");

    let channel = client.manager.open_pull(
        provider.id.clone(),
        &Ticket("yes".into()),
        dag.root,
        everything()?,
    )?;
    until_status(&client.manager, &channel, ChannelStatus::Completed).await?;

    let mut json = Vec::new();
    channels_to(dir.path(), false, true, &mut json, std::future::pending()).await?;
    let lines = parse_lines(&json)?;
    ensure!(lines.len() == 1, "one channel: {lines:?}");
    let line = &lines[0];
    ensure!(line["event"] == "channel");
    ensure!(line["id"] == channel.to_string().as_str());
    ensure!(line["transfer_id"] == channel.id.value());
    ensure!(line["status"] == "Completed" && line["finished"] == true);
    ensure!(line["pull"] == true && line["initiator"] == true && line["direction"] == "in");
    ensure!(line["peer"] == provider.id.to_string().as_str());
    ensure!(line["root"] == dag.root.to_string().as_str());
    ensure!(line["bytes"] == dag.total_bytes() && line["received"] == dag.total_bytes());
    ensure!(line["blocks"] == dag.block_count(), "{line}");

    let mut table = Vec::new();
    channels_to(dir.path(), false, false, &mut table, std::future::pending()).await?;
    let table = String::from_utf8(table)?;
    // Columns as wide as their widest cell, two spaces apart, the bytes to the right.
    let (id, peer) = (channel.to_string(), provider.id.to_string());
    let bytes = dag.total_bytes().to_string();
    let bytes_width = bytes.len().max("BYTES".len());
    let expected = format!(
        "{:<id_width$}  DIRECTION  {:<peer_width$}  STATUS     {:>bytes_width$}  PROGRESS\n\
         {id}  pull in    {peer}  Completed  {bytes:>bytes_width$}  {} blocks\n",
        "ID",
        "PEER",
        "BYTES",
        dag.block_count(),
        id_width = id.len(),
        peer_width = peer.len(),
    );
    ensure!(table == expected, "{table:?} != {expected:?}");

    // The provider's side, through its own socket: the same channel going out.
    let (provider_dir, _provider_server) = served(&provider).await?;
    let mut json = Vec::new();
    channels_to(
        provider_dir.path(),
        false,
        true,
        &mut json,
        std::future::pending(),
    )
    .await?;
    let lines = parse_lines(&json)?;
    ensure!(lines.len() == 1);
    ensure!(lines[0]["direction"] == "out" && lines[0]["initiator"] == false);
    ensure!(lines[0]["sent"] == dag.total_bytes() && lines[0]["bytes"] == dag.total_bytes());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_cancel_a_live_channel() -> anyhow::Result<()> {
    let dag = Dag::new(20, 300, 2)?;
    let (client, provider, hub) = pair(&dag).await?;
    let (dir, _server) = served(&client).await?;
    hub.limit_blocks(Some(2));
    let channel = client.manager.open_pull(
        provider.id.clone(),
        &Ticket("yes".into()),
        dag.root,
        everything()?,
    )?;
    until_status(&client.manager, &channel, ChannelStatus::Ongoing).await?;

    // By transfer id alone.
    let mut out = Vec::new();
    let name = channel.id.value().to_string();
    let view = channel_command_to(dir.path(), Op::Pause, &name, false, &mut out).await?;
    ensure!(view.id == channel.to_string() && view.status == "InitiatorPaused");
    ensure!(String::from_utf8(out)? == format!("paused {channel} (now InitiatorPaused)\n"));
    ensure!(client.manager.status(&channel) == ChannelStatus::InitiatorPaused);
    until_status(&provider.manager, &channel, ChannelStatus::InitiatorPaused).await?;

    // By the full id, in JSON.
    let mut out = Vec::new();
    let view =
        channel_command_to(dir.path(), Op::Resume, &channel.to_string(), true, &mut out).await?;
    ensure!(view.status == "Ongoing");
    let lines = parse_lines(&out)?;
    ensure!(lines.len() == 1 && lines[0]["event"] == "resumed" && lines[0]["status"] == "Ongoing");
    until_status(&provider.manager, &channel, ChannelStatus::Ongoing).await?;

    // By a prefix of the full id.
    let full = channel.to_string();
    let prefix = &full[..full.len() - 1];
    let mut out = Vec::new();
    let view = channel_command_to(dir.path(), Op::Cancel, prefix, false, &mut out).await?;
    ensure!(view.id == full);
    until_status(&client.manager, &channel, ChannelStatus::Cancelled).await?;
    until_status(&provider.manager, &channel, ChannelStatus::Cancelled).await?;
    hub.limit_blocks(None);
    ensure!(client.manager.channel_state(&channel)?.received < dag.total_bytes());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_of_a_live_channel_goes_through_and_the_transfer_completes() -> anyhow::Result<()> {
    let dag = Dag::new(12, 300, 3)?;
    let (client, provider, hub) = pair(&dag).await?;
    let (dir, _server) = served(&client).await?;
    hub.limit_blocks(Some(2));
    let channel = client.manager.open_pull(
        provider.id.clone(),
        &Ticket("yes".into()),
        dag.root,
        everything()?,
    )?;
    until_status(&client.manager, &channel, ChannelStatus::Ongoing).await?;
    let mut events = client.manager.subscribe_channel(channel.clone());
    let suffix = format!("-{}", channel.id.value());
    let mut out = Vec::new();
    let view = channel_command_to(dir.path(), Op::Restart, &suffix, false, &mut out).await?;
    ensure!(view.id == channel.to_string());
    ensure!(String::from_utf8(out)?.starts_with(&format!("restarted {channel} (now ")));
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let Ok(Event::Channel { event, .. }) = events.recv().await
                && event.code == EventCode::Restart
            {
                return;
            }
        }
    })
    .await
    .context("a Restart event")?;
    hub.limit_blocks(None);
    let done = until_status(&client.manager, &channel, ChannelStatus::Completed).await?;
    ensure!(done.received == dag.total_bytes());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_updates_until_stopped() -> anyhow::Result<()> {
    let dag = Dag::new(10, 300, 4)?;
    let (client, provider, hub) = pair(&dag).await?;
    let (dir, _server) = served(&client).await?;
    let (mut sink, mut lines) = LineSink::new();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let path = dir.path().to_path_buf();
    let watcher = tokio::spawn(async move {
        channels_to(&path, true, true, &mut sink, async {
            let _ = stopped.await;
        })
        .await
    });
    hub.limit_blocks(Some(2));
    let channel = client.manager.open_pull(
        provider.id.clone(),
        &Ticket("yes".into()),
        dag.root,
        everything()?,
    )?;
    let id = channel.to_string();
    let update = |status: &'static str| {
        let id = id.clone();
        move |line: &str| {
            serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| {
                // The first state may come in the list or as an update, as the watch
                // subscribes before or after the channel opens.
                (v["event"] == "update" || v["event"] == "channel")
                    && v["id"] == id.as_str()
                    && v["status"] == status
            })
        }
    };
    until_line(&mut lines, update("Ongoing")).await?;
    client.manager.pause(&channel)?;
    until_line(&mut lines, update("InitiatorPaused")).await?;
    client.manager.resume(&channel)?;
    until_line(&mut lines, update("Ongoing")).await?;
    hub.limit_blocks(None);
    let done = until_line(&mut lines, update("Completed")).await?;
    let done: serde_json::Value = serde_json::from_str(&done)?;
    ensure!(done["bytes"] == dag.total_bytes());
    let _ = stop.send(());
    tokio::time::timeout(PATIENCE, watcher).await???;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_ends_with_an_error_when_the_serve_stops() -> anyhow::Result<()> {
    let hub = hub();
    let client = node(&hub, 1).await?;
    let (dir, server) = served(&client).await?;
    let (mut sink, mut lines) = LineSink::new();
    let path = dir.path().to_path_buf();
    let watcher = tokio::spawn(async move {
        channels_to(&path, true, false, &mut sink, std::future::pending()).await
    });
    until_line(&mut lines, |line| line == "no channels").await?;
    drop(server);
    let ended = tokio::time::timeout(PATIENCE, watcher).await??;
    let error = ended.err().context("the watch fails")?;
    ensure!(
        matches!(
            error.downcast_ref::<ControlError>(),
            Some(ControlError::Closed)
        ),
        "{error:#}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_socket_is_replaced_and_a_second_serve_is_refused() -> anyhow::Result<()> {
    let hub = hub();
    let client = node(&hub, 1).await?;
    let dir = tempfile::tempdir()?;
    let path = socket_path(dir.path());
    // A crashed serve leaves its socket behind, with nobody listening.
    drop(std::os::unix::net::UnixListener::bind(&path)?);
    ensure!(path.exists());
    let mut out = Vec::new();
    let error = channels_to(dir.path(), false, false, &mut out, std::future::pending())
        .await
        .err()
        .context("no serve yet")?;
    ensure!(matches!(
        error.downcast_ref::<ControlError>(),
        Some(ControlError::NoServe { .. })
    ));

    let target: Arc<dyn ControlTarget> = Arc::new(client.manager.clone());
    let server = serve(&path, Arc::clone(&target)).await?;
    let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
    ensure!(mode == 0o600, "mode {mode:o}");
    channels_to(dir.path(), false, false, &mut out, std::future::pending()).await?;

    let second = serve(&path, Arc::clone(&target)).await;
    let error = second.err().context("a second serve is refused")?;
    ensure!(matches!(error, ControlError::AlreadyRunning { .. }));
    ensure!(
        error.to_string()
            == format!(
                "another dtx serve is already running on {}: stop it first or use another --data-dir",
                dir.path().display()
            )
    );
    // The refused serve left the running one alone.
    channels_to(dir.path(), false, false, &mut out, std::future::pending()).await?;

    drop(server);
    ensure!(!path.exists(), "the socket goes with its server");

    std::fs::write(&path, b"not a socket")?;
    let error = serve(&path, target).await.err().context("not a socket")?;
    ensure!(matches!(error, ControlError::NotASocket { .. }));
    ensure!(std::fs::read(&path)? == b"not a socket", "left alone");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_serve_the_client_says_so_in_one_line() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let expected = format!(
        "no dtx serve is running on {}: start one with `dtx serve`",
        dir.path().display()
    );
    let mut out = Vec::new();
    let error = channels_to(dir.path(), true, false, &mut out, std::future::pending())
        .await
        .err()
        .context("channels fails")?;
    ensure!(format!("{error:#}") == expected, "{error:#}");
    let error = channel_command_to(dir.path(), Op::Cancel, "1", false, &mut out)
        .await
        .err()
        .context("cancel fails")?;
    ensure!(format!("{error:#}") == expected, "{error:#}");
    ensure!(out.is_empty(), "nothing printed");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ambiguous_and_refused_commands_are_errors() -> anyhow::Result<()> {
    let dag = Dag::new(2, 100, 5)?;
    let (client, provider, _hub) = pair(&dag).await?;
    let (dir, _server) = served(&client).await?;
    let mut channels = Vec::new();
    for _ in 0..2 {
        let channel = client.manager.open_pull(
            provider.id.clone(),
            &Ticket("yes".into()),
            dag.root,
            everything()?,
        )?;
        until_status(&client.manager, &channel, ChannelStatus::Completed).await?;
        channels.push(channel);
    }
    let mut out = Vec::new();
    let refused = |result: anyhow::Result<ChannelView>| -> anyhow::Result<String> {
        let error = result.err().context("refused")?;
        match error.downcast_ref::<ControlError>() {
            Some(ControlError::Refused { message }) => Ok(message.clone()),
            _ => anyhow::bail!("not a refusal: {error:#}"),
        }
    };
    let message =
        refused(channel_command_to(dir.path(), Op::Pause, "nothing", false, &mut out).await)?;
    ensure!(
        message == "no channel matches \"nothing\": see `dtx channels`",
        "{message}"
    );
    // Both ids start with the peers' part.
    let common = format!("{}-{}", client.id, provider.id);
    let message =
        refused(channel_command_to(dir.path(), Op::Pause, &common, false, &mut out).await)?;
    ensure!(
        message == format!("2 channels match {common:?}: give more of the id"),
        "{message}"
    );
    let first = channels[0].to_string();
    let message =
        refused(channel_command_to(dir.path(), Op::Pause, &first, false, &mut out).await)?;
    ensure!(
        message.starts_with(&format!("cannot pause {first}: command refused: ")),
        "{message}"
    );
    ensure!(out.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_an_error_answer() -> anyhow::Result<()> {
    let hub = hub();
    let client = node(&hub, 1).await?;
    let (dir, _server) = served(&client).await?;
    for (request, expected) in [
        ("nonsense\n", "malformed request: "),
        (
            "{\"op\":\"explode\",\"channel\":\"1\"}\n",
            "malformed request: unknown command \"explode\"",
        ),
        (
            "{\"op\":\"pause\"}\n",
            "malformed request: op \"pause\" without a channel",
        ),
    ] {
        let stream = UnixStream::connect(socket_path(dir.path())).await?;
        let (reader, mut writer) = stream.into_split();
        writer.write_all(request.as_bytes()).await?;
        let mut line = String::new();
        tokio::time::timeout(PATIENCE, BufReader::new(reader).read_line(&mut line)).await??;
        let answer: serde_json::Value = serde_json::from_str(&line)?;
        ensure!(answer["answer"] == "error", "{line}");
        let message = answer["message"].as_str().context("message")?;
        ensure!(message.starts_with(expected), "{message}");
    }
    // A line past the limit is not read to its end: the connection is dropped.
    let stream = UnixStream::connect(socket_path(dir.path())).await?;
    let (reader, mut writer) = stream.into_split();
    let long = vec![b'x'; MAX_REQUEST + 10];
    let _ = writer.write_all(&long).await;
    let mut line = String::new();
    let read = tokio::time::timeout(PATIENCE, BufReader::new(reader).read_line(&mut line)).await?;
    ensure!(matches!(read, Ok(0) | Err(_)), "no answer: {line}");
    Ok(())
}

#[test]
fn watch_rows_line_up_under_the_table_and_widen_it_when_longer() -> anyhow::Result<()> {
    let view = |id: &str, status: &str, bytes: u64| ChannelView {
        id: id.to_owned(),
        transfer_id: 1,
        pull: true,
        initiator: true,
        direction: Direction::In,
        peer: "P".to_owned(),
        status: status.to_owned(),
        finished: false,
        message: String::new(),
        root: String::new(),
        bytes,
        blocks: 3,
        sent: 0,
        received: bytes,
        total: 0,
    };
    let mut columns = Columns::default();
    let mut out = Vec::new();
    write_table(&mut out, &[view("a-b-1", "Ongoing", 7)], &mut columns)?;
    write_row(
        &mut out,
        &view("a-b-1", "Completed", 1_000_000),
        &mut columns,
    )?;
    let text = String::from_utf8(out)?;
    let expected = "\
        ID     DIRECTION  PEER  STATUS   BYTES  PROGRESS\n\
        a-b-1  pull in    P     Ongoing      7  3 blocks\n\
        a-b-1  pull in    P     Completed  1000000  3 blocks\n";
    ensure!(text == expected, "{text:?} != {expected:?}");
    Ok(())
}

#[test]
fn names_resolve_to_exactly_one_channel() -> anyhow::Result<()> {
    let a = datatransfer::PeerId::from_bytes(vec![0, 1]);
    let b = datatransfer::PeerId::from_bytes(vec![0, 2]);
    let c = datatransfer::PeerId::from_bytes(vec![0, 3]);
    let one = ChannelId::new(a.clone(), b.clone(), TransferId(7));
    let two = ChannelId::new(a.clone(), c.clone(), TransferId(17));
    let three = ChannelId::new(c.clone(), b, TransferId(1234));
    let known = [one.clone(), two.clone(), three.clone()];
    ensure!(resolve(&one.to_string(), &known)? == one);
    ensure!(resolve(&format!(" {one} "), &known)? == one);
    ensure!(
        resolve("7", &known)? == one,
        "the transfer id, even where another ends in 7"
    );
    ensure!(resolve("17", &known)? == two);
    ensure!(resolve("-1234", &known)? == three);
    ensure!(resolve(&format!("{a}-{c}"), &known)? == two);
    ensure!(resolve(&a.to_string(), &known).is_err(), "two start so");
    ensure!(resolve("", &known).is_err());
    ensure!(resolve("99", &known).is_err());
    Ok(())
}

#[test]
fn ops_parse_and_print_their_names() -> anyhow::Result<()> {
    for op in Op::ALL {
        ensure!(op.name().parse::<Op>()? == op);
        ensure!(op.to_string() == op.name());
    }
    let error = "stop".parse::<Op>().err().context("unknown")?;
    ensure!(
        error.to_string() == "unknown command \"stop\": expected cancel, pause, resume or restart"
    );
    Ok(())
}
