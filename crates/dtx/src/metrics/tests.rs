//! The metrics of real transfers on the in-memory transport, scraped over HTTP.

use anyhow::{Context, ensure};
use datatransfer::ChannelStatus;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;
use crate::testing::{Dag, PATIENCE, TestNode, Ticket, everything, hub, node, until_status};

/// A node's metrics: recorded from its events and served on a loopback port.
struct Recorded {
    metrics: Arc<Metrics>,
    server: MetricsServer,
    _recorder: JoinHandle<()>,
}

async fn record(node: &TestNode, config: Config) -> anyhow::Result<Recorded> {
    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::new(config, &mut registry));
    let events = node.manager.subscribe();
    let recorder = spawn_recorder(events, Arc::clone(&metrics));
    let server = serve_metrics(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        Arc::new(registry),
        Arc::clone(&metrics),
    )
    .await?;
    Ok(Recorded {
        metrics,
        server,
        _recorder: recorder,
    })
}

/// One HTTP/1.1 request; the status code, the content type and the body.
async fn http(addr: SocketAddr, method: &str, path: &str) -> anyhow::Result<(u16, String, String)> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        let request =
            format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        anyhow::Ok(String::from_utf8(response)?)
    };
    let response = tokio::time::timeout(PATIENCE, exchange).await??;
    let (head, body) = response.split_once("\r\n\r\n").context("no header end")?;
    let status = head
        .split(' ')
        .nth(1)
        .context("no status")?
        .parse::<u16>()?;
    let content_type = head
        .lines()
        .find_map(|line| line.strip_prefix("content-type: "))
        .unwrap_or_default()
        .to_owned();
    Ok((status, content_type, body.to_owned()))
}

/// The value of the series `name{labels}` in `text`, if it is there.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    let series = if labels.is_empty() {
        format!("{name} ")
    } else {
        format!("{name}{{{}}} ", labels.join(","))
    };
    text.lines()
        .find_map(|line| line.strip_prefix(series.as_str()))
        .and_then(|value| value.trim().parse().ok())
}

/// Scrapes `recorded` over HTTP until `done` holds (the recorder runs behind the manager).
async fn scrape_once(
    addr: SocketAddr,
    metrics: &Metrics,
    done: impl Fn(&str) -> bool,
) -> anyhow::Result<String> {
    let mut changes = metrics.recorded();
    tokio::time::timeout(PATIENCE, async {
        loop {
            changes.borrow_and_update();
            let (status, _, body) = http(addr, "GET", "/metrics").await?;
            ensure!(status == 200, "status {status}");
            if done(&body) {
                return anyhow::Ok(body);
            }
            changes.changed().await?;
        }
    })
    .await
    .context("waiting for the recorder")?
}

fn completed(n: u64) -> impl Fn(&str) -> bool {
    move |text| value(text, "dtx_channels", &[("status", "Completed")]) == Some(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_gives_exact_byte_block_and_status_values_over_http() -> anyhow::Result<()> {
    let dag = Dag::new(6, 500, 1)?;
    let hub = hub();
    let client = node(&hub, 1).await?;
    let provider = node(&hub, 2).await?;
    dag.load_into(&provider.blocks).await?;
    let client_metrics = record(&client, Config::default()).await?;
    let provider_metrics = record(&provider, Config::default()).await?;

    let channel = client.manager.open_pull(
        provider.id.clone(),
        &Ticket("yes".into()),
        dag.root,
        everything()?,
    )?;
    until_status(&client.manager, &channel, ChannelStatus::Completed).await?;
    until_status(&provider.manager, &channel, ChannelStatus::Completed).await?;

    let (total, blocks) = (dag.total_bytes(), dag.block_count());
    let id = channel.to_string();
    let (a, b) = (client.id.to_string(), provider.id.to_string());

    let text = scrape_once(
        client_metrics.server.local_addr(),
        &client_metrics.metrics,
        completed(1),
    )
    .await?;
    let peer = [("peer", b.as_str())];
    let series = [("channel", id.as_str()), ("peer", b.as_str())];
    ensure!(
        value(&text, "dtx_peer_received_bytes_total", &peer) == Some(total),
        "{text}"
    );
    ensure!(
        value(&text, "dtx_peer_received_blocks_total", &peer) == Some(blocks),
        "{text}"
    );
    ensure!(value(&text, "dtx_peer_sent_bytes_total", &peer).unwrap_or(0) == 0);
    ensure!(value(&text, "dtx_channel_received_bytes", &series) == Some(total));
    ensure!(value(&text, "dtx_channel_received_blocks", &series) == Some(blocks));
    ensure!(value(&text, "dtx_channel_sent_bytes", &series) == Some(0));
    ensure!(value(&text, "dtx_peer_restarts_total", &peer).unwrap_or(0) == 0);
    ensure!(
        !text.contains("dtx_peer_errors_total{"),
        "no errors: {text}"
    );
    ensure!(value(&text, "dtx_events_lost_total", &[]) == Some(0));
    // Every status the channel went through was counted and left again.
    for line in text.lines().filter(|l| l.starts_with("dtx_channels{")) {
        let expected = if line.contains("\"Completed\"") {
            " 1"
        } else {
            " 0"
        };
        ensure!(line.ends_with(expected), "{line}");
    }

    let text = scrape_once(
        provider_metrics.server.local_addr(),
        &provider_metrics.metrics,
        completed(1),
    )
    .await?;
    let peer = [("peer", a.as_str())];
    let series = [("channel", id.as_str()), ("peer", a.as_str())];
    ensure!(
        value(&text, "dtx_peer_sent_bytes_total", &peer) == Some(total),
        "{text}"
    );
    ensure!(
        value(&text, "dtx_peer_sent_blocks_total", &peer) == Some(blocks),
        "{text}"
    );
    ensure!(value(&text, "dtx_channel_sent_bytes", &series) == Some(total));
    ensure!(value(&text, "dtx_channel_sent_blocks", &series) == Some(blocks));
    ensure!(value(&text, "dtx_channel_received_bytes", &series) == Some(0));
    Ok(())
}

/// The events of one completed pull, as the client saw them.
async fn events_of_a_pull() -> anyhow::Result<(Vec<Event>, ChannelId, String)> {
    let dag = Dag::new(6, 500, 3)?;
    let hub = hub();
    let client = node(&hub, 1).await?;
    let provider = node(&hub, 2).await?;
    dag.load_into(&provider.blocks).await?;
    let mut events = client.manager.subscribe();
    let channel = client.manager.open_pull(
        provider.id.clone(),
        &Ticket("yes".into()),
        dag.root,
        everything()?,
    )?;
    let mut seen = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        loop {
            let event = events.recv().await?;
            let done = matches!(&event, Event::Channel { state, .. }
                if state.channel_id == channel && state.status == ChannelStatus::Completed);
            seen.push(event);
            if done {
                return anyhow::Ok(());
            }
        }
    })
    .await
    .context("waiting for the pull")??;
    Ok((seen, channel, provider.id.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_never_shows_half_of_an_event() -> anyhow::Result<()> {
    let (events, channel, provider) = events_of_a_pull().await?;
    let peer = [("peer", provider.as_str())];
    let series = [("channel", channel.to_string()), ("peer", provider.clone())];
    let series: Vec<(&str, &str)> = series.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut scrapes = 0;
    for _ in 0..200 {
        let mut registry = Registry::default();
        let metrics = Arc::new(Metrics::new(Config::default(), &mut registry));
        let replay = {
            let (metrics, events) = (Arc::clone(&metrics), events.clone());
            std::thread::spawn(move || events.iter().for_each(|event| metrics.record(event)))
        };
        while !replay.is_finished() {
            let text = metrics.encode(&registry)?;
            let counted = value(&text, "dtx_peer_received_bytes_total", &peer).unwrap_or(0);
            let shown = value(&text, "dtx_channel_received_bytes", &series).unwrap_or(0);
            ensure!(
                counted == shown,
                "peer counter {counted}, channel gauge {shown}: {text}"
            );
            scrapes += 1;
        }
        replay
            .join()
            .map_err(|_| anyhow::anyhow!("the replay panicked"))?;
    }
    ensure!(scrapes > 0, "no scrape ran while events were recorded");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_channels_beyond_the_bound_lose_their_series() -> anyhow::Result<()> {
    let hub = hub();
    let client = node(&hub, 1).await?;
    let provider = node(&hub, 2).await?;
    let recorded = record(&client, Config::default().with_max_finished_channels(2)).await?;
    let mut channels = Vec::new();
    let mut total = 0;
    for seed in 0..4u8 {
        let dag = Dag::new(2, 100, 10 + seed)?;
        dag.load_into(&provider.blocks).await?;
        total += dag.total_bytes();
        let channel = client.manager.open_pull(
            provider.id.clone(),
            &Ticket("yes".into()),
            dag.root,
            everything()?,
        )?;
        until_status(&client.manager, &channel, ChannelStatus::Completed).await?;
        channels.push(channel.to_string());
    }
    let text = scrape_once(
        recorded.server.local_addr(),
        &recorded.metrics,
        completed(4),
    )
    .await?;
    ensure!(recorded.metrics.tracked_channels() == 2);
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("dtx_channel_received_bytes{"))
        .collect();
    ensure!(kept.len() == 2, "{kept:?}");
    for (n, channel) in channels.iter().enumerate() {
        let there = text.contains(&format!("channel=\"{channel}\""));
        ensure!(there == (n >= 2), "channel {n} kept: {there}");
    }
    // The per-peer totals still count every channel.
    let peer = provider.id.to_string();
    ensure!(
        value(
            &text,
            "dtx_peer_received_bytes_total",
            &[("peer", peer.as_str())]
        ) == Some(total)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_and_rejections_are_counted() -> anyhow::Result<()> {
    let dag = Dag::new(8, 200, 20)?;
    let hub = hub();
    let client = node(&hub, 1).await?;
    let provider = node(&hub, 2).await?;
    dag.load_into(&provider.blocks).await?;
    let client_metrics = record(&client, Config::default()).await?;
    let provider_metrics = record(&provider, Config::default()).await?;

    hub.limit_blocks(Some(2));
    let channel = client.manager.open_pull(
        provider.id.clone(),
        &Ticket("yes".into()),
        dag.root,
        everything()?,
    )?;
    until_status(&client.manager, &channel, ChannelStatus::Ongoing).await?;
    let mut events = client.manager.subscribe_channel(channel.clone());
    client.manager.restart_channel(&channel)?;
    // The initiator's Restart event comes with the responder's answer; lifting the limit
    // before it would let the first request finish the transfer and the answer find the
    // channel completed.
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
    until_status(&client.manager, &channel, ChannelStatus::Completed).await?;
    let text = scrape_once(
        client_metrics.server.local_addr(),
        &client_metrics.metrics,
        completed(1),
    )
    .await?;
    let id = channel.to_string();
    let b = provider.id.to_string();
    ensure!(
        value(&text, "dtx_peer_restarts_total", &[("peer", b.as_str())]) == Some(1),
        "{text}"
    );
    ensure!(
        value(
            &text,
            "dtx_channel_restarts_total",
            &[("channel", id.as_str()), ("peer", b.as_str())]
        ) == Some(1)
    );
    ensure!(
        value(
            &text,
            "dtx_peer_received_bytes_total",
            &[("peer", b.as_str())]
        ) == Some(dag.total_bytes()),
        "a restart does not count bytes twice: {text}"
    );

    // The provider's validator refuses a voucher: an error of kind `rejected` for the client.
    client.manager.open_pull(
        provider.id.clone(),
        &Ticket("no".into()),
        dag.root,
        everything()?,
    )?;
    let a = client.id.to_string();
    let text = scrape_once(
        provider_metrics.server.local_addr(),
        &provider_metrics.metrics,
        |text| {
            value(
                text,
                "dtx_peer_errors_total",
                &[("peer", a.as_str()), ("kind", "rejected")],
            )
            .is_some()
        },
    )
    .await?;
    ensure!(
        value(
            &text,
            "dtx_peer_errors_total",
            &[("peer", a.as_str()), ("kind", "rejected")]
        ) == Some(1),
        "{text}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_channels_are_shown_but_not_counted_again() -> anyhow::Result<()> {
    let dag = Dag::new(3, 100, 30)?;
    let hub = hub();
    let client = node(&hub, 1).await?;
    let provider = node(&hub, 2).await?;
    dag.load_into(&provider.blocks).await?;
    let channel = client.manager.open_pull(
        provider.id.clone(),
        &Ticket("yes".into()),
        dag.root,
        everything()?,
    )?;
    until_status(&client.manager, &channel, ChannelStatus::Completed).await?;

    // As a serve started again: the channel comes from the store.
    let mut registry = Registry::default();
    let metrics = Metrics::new(Config::default(), &mut registry);
    let states = client.manager.in_progress_channels()?;
    metrics.seed(states.values());
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    let b = provider.id.to_string();
    let series = [("channel", channel.to_string()), ("peer", b.clone())];
    let series: Vec<(&str, &str)> = series.iter().map(|(k, v)| (*k, v.as_str())).collect();
    ensure!(
        value(&text, "dtx_channel_received_bytes", &series) == Some(dag.total_bytes()),
        "{text}"
    );
    ensure!(
        value(
            &text,
            "dtx_peer_received_bytes_total",
            &[("peer", b.as_str())]
        )
        .is_none(),
        "{text}"
    );
    ensure!(completed(1)(&text), "{text}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_answers_metrics_only_at_get_metrics() -> anyhow::Result<()> {
    let hub = hub();
    let client = node(&hub, 1).await?;
    let recorded = record(&client, Config::default()).await?;
    let addr = recorded.server.local_addr();
    let (status, content_type, body) = http(addr, "GET", "/metrics").await?;
    ensure!(
        status == 200 && content_type == CONTENT_TYPE,
        "{status} {content_type}"
    );
    // Families without series yet show nothing; the plain counter shows its zero.
    ensure!(
        body.contains("# TYPE dtx_events_lost counter\ndtx_events_lost_total 0\n"),
        "{body}"
    );
    ensure!(body.ends_with("# EOF\n"), "{body}");
    let (status, _, _) = http(addr, "GET", "/").await?;
    ensure!(status == 404);
    let (status, _, _) = http(addr, "POST", "/metrics").await?;
    ensure!(status == 405);
    let taken = serve_metrics(addr, Arc::new(Registry::default()), recorded.metrics).await;
    let error = taken.err().context("the port is taken")?;
    ensure!(error.to_string() == format!("cannot listen for metrics on {addr}"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_seeds_the_existing_channels_and_records_new_ones() -> anyhow::Result<()> {
    let before = Dag::new(3, 100, 40)?;
    let after = Dag::new(5, 100, 41)?;
    let hub = hub();
    let client = node(&hub, 1).await?;
    let provider = node(&hub, 2).await?;
    before.load_into(&provider.blocks).await?;
    after.load_into(&provider.blocks).await?;
    let first = client.manager.open_pull(
        provider.id.clone(),
        &Ticket("yes".into()),
        before.root,
        everything()?,
    )?;
    until_status(&client.manager, &first, ChannelStatus::Completed).await?;
    let mut channels = vec![first];
    let endpoint = start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        &client.manager,
        Config::default(),
    )
    .await?;
    let channel = client.manager.open_pull(
        provider.id.clone(),
        &Ticket("yes".into()),
        after.root,
        everything()?,
    )?;
    until_status(&client.manager, &channel, ChannelStatus::Completed).await?;
    channels.push(channel);
    let text = scrape_once(endpoint.local_addr(), endpoint.metrics(), completed(2)).await?;
    let b = provider.id.to_string();
    for (channel, dag) in channels.iter().zip([&before, &after]) {
        let id = channel.to_string();
        let series = [("channel", id.as_str()), ("peer", b.as_str())];
        ensure!(value(&text, "dtx_channel_received_bytes", &series) == Some(dag.total_bytes()));
    }
    // Only what moved while the endpoint ran counts for the peer.
    ensure!(
        value(
            &text,
            "dtx_peer_received_bytes_total",
            &[("peer", b.as_str())]
        ) == Some(after.total_bytes()),
        "{text}"
    );
    Ok(())
}
