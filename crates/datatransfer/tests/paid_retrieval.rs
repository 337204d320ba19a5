//! Paid transfers with revalidation (spec §6.3–§6.4): the provider pauses whenever the client
//! owes it a threshold of bytes (sent by it in a pull, received by it in a push), asking for a
//! payment in a voucher result; the client pays with a voucher and the provider resumes; at the
//! end the provider asks for the remainder (finalization) and completes once it is paid. Over
//! `MemStore` and `SledStore`.

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, ensure};
use common::{
    Backend, Bill, Blocks, Dag, Payment, Pricing, TestVoucher, ensure_settled, everything, hub,
    open_store, peer, peer_with,
};
use datatransfer::{Event, decode_result};
use datatransfer_fsm::{ChannelStatus, EventCode};

over_both_stores!(paid_pull_pauses_for_payments_and_settles_at_the_end);
async fn paid_pull_pauses_for_payments_and_settles_at_the_end(
    backend: Backend,
) -> anyhow::Result<()> {
    paid_transfer(backend, true).await
}

over_both_stores!(paid_push_pauses_for_payments_and_settles_at_the_end);
async fn paid_push_pauses_for_payments_and_settles_at_the_end(
    backend: Backend,
) -> anyhow::Result<()> {
    paid_transfer(backend, false).await
}

/// The client pulls from (or pushes to) a provider that charges for every byte it sends (or
/// receives).
async fn paid_transfer(backend: Backend, pull: bool) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let dag = Dag::new(10, 500, 40)?;
    let hub = hub();
    let client = peer(&hub, 1, open_store(backend, &dir, "client")?).await?;
    let accounts = Arc::new(Mutex::new(BTreeMap::new()));
    let pricing = Pricing {
        interval: 1500,
        bill: Bill::Owed,
        accounts: Arc::clone(&accounts),
    };
    let provider = peer_with(
        &hub,
        2,
        open_store(backend, &dir, "provider")?,
        Arc::new(Blocks::new()),
        |m| {
            m.register_voucher_type(common::AcceptAll)?;
            m.register_revalidator(pricing)?;
            m.register_voucher_result_type::<common::Amount>()?;
            Ok(())
        },
    )
    .await?;
    let data_sender = if pull { &provider } else { &client };
    dag.load_into(&data_sender.blocks).await?;

    let mut events = client.manager.subscribe();
    let voucher = TestVoucher("paid".into());
    let channel = if pull {
        client
            .manager
            .open_pull(provider.id.clone(), &voucher, dag.root, everything())?
    } else {
        client
            .manager
            .open_push(provider.id.clone(), &voucher, dag.root, everything())?
    };
    // The client pays whatever the provider asks, whenever it pauses or begins finalizing.
    let mut payments = Vec::new();
    let mut answered = 0;
    let pay = async {
        loop {
            let event = events.recv().await?;
            let Event::Channel { event, state } = event else {
                continue;
            };
            if event.channel != channel {
                continue;
            }
            // A final request fires both `ResponderBeginsFinalization` and `PauseResponder`:
            // pay each request once, by counting the results answered.
            if matches!(
                event.code,
                EventCode::PauseResponder | EventCode::ResponderBeginsFinalization
            ) && state.voucher_results.len() > answered
            {
                answered = state.voucher_results.len();
                let asked = state.last_voucher_result().context("a payment request")?;
                let common::Amount(owed) = decode_result(asked)?;
                if owed > 0 {
                    client.manager.send_voucher(&channel, &Payment(owed))?;
                    payments.push(owed);
                }
            }
            if event.status == ChannelStatus::Completed {
                return Ok::<(), anyhow::Error>(());
            }
            ensure!(
                !event.status.is_terminal(),
                "channel ended {}",
                event.status
            );
        }
    };
    tokio::time::timeout(common::PATIENCE, pay)
        .await
        .context("paid transfer")??;
    let at_provider =
        common::until_status(&provider.manager, &channel, ChannelStatus::Completed).await?;
    let at_client = client.manager.channel_state(&channel)?;

    let total = dag.total_bytes();
    let (at_receiver, at_sender, receiver_blocks) = if pull {
        (&at_client, &at_provider, &client.blocks)
    } else {
        (&at_provider, &at_client, &provider.blocks)
    };
    ensure!(
        at_receiver.received == total,
        "received {} of {total}",
        at_receiver.received
    );
    ensure!(
        at_sender.sent == total,
        "sent {} of {total}",
        at_sender.sent
    );
    ensure!(dag.is_in(receiver_blocks).await?);
    // Both ends recorded every voucher and every payment request.
    ensure_settled(
        &accounts,
        &channel,
        total,
        &payments,
        &at_provider,
        &at_client,
    )?;
    let requests: Vec<u64> = at_client
        .voucher_results
        .iter()
        .filter_map(|r| decode_result::<common::Amount>(r).ok())
        .map(|common::Amount(n)| n)
        .filter(|n| *n > 0)
        .collect();
    ensure!(
        requests == payments,
        "requests {requests:?}, payments {payments:?}"
    );
    Ok(())
}
