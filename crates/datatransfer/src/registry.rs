//! [`Registry`]: the voucher types, revalidators, voucher-result types and transport
//! configurers a node knows, keyed by type identifier (`spec/data-transfer.md` §6.1), and how
//! the state machine's questions are answered from them.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use cid::Cid;
use datatransfer_fsm::{Validation, ValidationKind, Verdict};
use datatransfer_message::{ChannelId, TypeIdentifier};
use datatransfer_transport::StoreName;
use ipld_dagcbor::Node;

use crate::voucher::{
    Decision, Request, RequestValidator, Revalidator, TransportConfigurer, Voucher, VoucherError,
    VoucherResult,
};

/// A type identifier is registered twice in the same registry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The identifier is taken in this registry.
    #[error("{registry} type {type_id} is already registered")]
    AlreadyRegistered {
        /// Which registry: "voucher", "revalidator", "voucher result" or "transport configurer".
        registry: &'static str,
        /// The identifier.
        type_id: TypeIdentifier,
    },
}

/// The four registries of a node. The manager holds one; it is also usable
/// alone to answer validation questions.
#[derive(Clone, Default)]
pub struct Registry {
    validators: BTreeMap<TypeIdentifier, Arc<dyn ErasedValidator>>,
    revalidators: Vec<(TypeIdentifier, Arc<dyn ErasedRevalidator>)>,
    results: BTreeMap<TypeIdentifier, ResultDecoder>,
    configurers: BTreeMap<TypeIdentifier, Arc<dyn ErasedConfigurer>>,
}

/// Which responder hook of a [`Revalidator`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// `on_pull_data_sent` with the block's size.
    PullDataSent(u64),
    /// `on_push_data_received` with the block's size.
    PushDataReceived(u64),
    /// `on_complete`.
    Complete,
}

impl Registry {
    /// Empty registries.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Registers the voucher type `V` with its validator (Go's `RegisterVoucherType`).
    ///
    /// # Errors
    /// [`RegistryError::AlreadyRegistered`] if `V::TYPE` has a validator already.
    pub fn register_voucher_type<V: Voucher>(
        &mut self,
        validator: impl RequestValidator<V>,
    ) -> Result<(), RegistryError> {
        let type_id = TypeIdentifier::new(V::TYPE);
        if self.validators.contains_key(&type_id) {
            return Err(RegistryError::AlreadyRegistered {
                registry: "voucher",
                type_id,
            });
        }
        let erased = TypedValidator {
            validator,
            voucher: PhantomData::<fn() -> V>,
        };
        self.validators.insert(type_id, Arc::new(erased));
        Ok(())
    }

    /// Registers a revalidator for vouchers of type `V` (Go's `RegisterRevalidator`).
    ///
    /// # Errors
    /// [`RegistryError::AlreadyRegistered`] if `V::TYPE` has a revalidator already.
    pub fn register_revalidator<V: Voucher>(
        &mut self,
        revalidator: impl Revalidator<V>,
    ) -> Result<(), RegistryError> {
        let type_id = TypeIdentifier::new(V::TYPE);
        if self.revalidators.iter().any(|(id, _)| id == &type_id) {
            return Err(RegistryError::AlreadyRegistered {
                registry: "revalidator",
                type_id,
            });
        }
        let erased = TypedRevalidator {
            revalidator,
            voucher: PhantomData::<fn() -> V>,
        };
        self.revalidators.push((type_id, Arc::new(erased)));
        Ok(())
    }

    /// Registers the voucher-result type `R` (Go's `RegisterVoucherResultType`).
    ///
    /// # Errors
    /// [`RegistryError::AlreadyRegistered`] if `R::TYPE` is registered already.
    pub fn register_voucher_result_type<R: VoucherResult>(&mut self) -> Result<(), RegistryError> {
        let type_id = TypeIdentifier::new(R::TYPE);
        if self.results.contains_key(&type_id) {
            return Err(RegistryError::AlreadyRegistered {
                registry: "voucher result",
                type_id,
            });
        }
        self.results.insert(
            type_id,
            ResultDecoder(|node| R::from_node(node).map(|_| ())),
        );
        Ok(())
    }

    /// Registers a transport configurer for channels whose voucher has type `V` (Go's
    /// `RegisterTransportConfigurer`).
    ///
    /// # Errors
    /// [`RegistryError::AlreadyRegistered`] if `V::TYPE` has a configurer already.
    pub fn register_transport_configurer<V: Voucher>(
        &mut self,
        configurer: impl TransportConfigurer<V>,
    ) -> Result<(), RegistryError> {
        let type_id = TypeIdentifier::new(V::TYPE);
        if self.configurers.contains_key(&type_id) {
            return Err(RegistryError::AlreadyRegistered {
                registry: "transport configurer",
                type_id,
            });
        }
        let erased = TypedConfigurer {
            configurer,
            voucher: PhantomData::<fn() -> V>,
        };
        self.configurers.insert(type_id, Arc::new(erased));
        Ok(())
    }

    /// Whether `type_id` has a validator.
    pub fn knows_voucher_type(&self, type_id: &TypeIdentifier) -> bool {
        self.validators.contains_key(type_id)
    }

    /// Checks a received voucher result against its registered type: `Ok(true)` when it is
    /// registered and decodes, `Ok(false)` when the type is not registered.
    ///
    /// # Errors
    /// The registered type's decoding error.
    pub fn check_result(
        &self,
        result: &datatransfer_fsm::VoucherResult,
    ) -> Result<bool, VoucherError> {
        match self.results.get(&result.result_type) {
            Some(ResultDecoder(decode)) => decode(&result.node).map(|()| true),
            None => Ok(false),
        }
    }

    /// Answers a question of the state machine with the registered validators and
    /// revalidators. Unknown voucher types and vouchers that do not decode are rejected with
    /// a reason, never an error.
    pub fn answer(&self, channel: &ChannelId, kind: &ValidationKind) -> Validation {
        match kind {
            ValidationKind::Open {
                pull,
                voucher,
                base_cid,
                selector,
            } => self.validate(channel, false, *pull, voucher, base_cid, selector),
            ValidationKind::Restart {
                pull,
                voucher,
                base_cid,
                selector,
            } => self.validate(channel, true, *pull, voucher, base_cid, selector),
            ValidationKind::Voucher { voucher } => self.revalidate(channel, voucher),
            ValidationKind::Complete => self.hook_or_accept(channel, Hook::Complete),
            ValidationKind::PullDataSent {
                additional_bytes, ..
            } => self.hook_or_accept(channel, Hook::PullDataSent(*additional_bytes)),
            ValidationKind::PushDataReceived {
                additional_bytes, ..
            } => self.hook_or_accept(channel, Hook::PushDataReceived(*additional_bytes)),
        }
    }

    /// Runs a responder hook over the revalidators, in registration order, until one handles
    /// it; `None` when none does.
    pub fn hook(&self, channel: &ChannelId, hook: Hook) -> Option<Validation> {
        self.revalidators
            .iter()
            .find_map(|(_, revalidator)| revalidator.hook(channel, hook))
            .map(Decision::into_validation)
    }

    fn hook_or_accept(&self, channel: &ChannelId, hook: Hook) -> Validation {
        self.hook(channel, hook)
            .unwrap_or_else(|| Validation::new(Verdict::Accept))
    }

    /// Whether any revalidator is registered (the per-block hooks only run then).
    pub fn has_revalidators(&self) -> bool {
        !self.revalidators.is_empty()
    }

    /// Runs the transport configurer registered for the channel's voucher type, if any;
    /// returns the block store it chose for the channel.
    pub fn configure(
        &self,
        channel: &ChannelId,
        voucher: &datatransfer_fsm::Voucher,
        transport: &dyn Any,
    ) -> Option<StoreName> {
        self.configurers
            .get(&voucher.voucher_type)?
            .configure(channel, &voucher.node, transport)
    }

    fn validate(
        &self,
        channel: &ChannelId,
        is_restart: bool,
        pull: bool,
        voucher: &datatransfer_fsm::Voucher,
        base_cid: &Cid,
        selector: &Node,
    ) -> Validation {
        let Some(validator) = self.validators.get(&voucher.voucher_type) else {
            return unknown_type(&voucher.voucher_type);
        };
        let question = ErasedRequest {
            is_restart,
            pull,
            channel,
            voucher: &voucher.node,
            base_cid,
            selector,
        };
        validator.validate(&question).into_validation()
    }

    fn revalidate(&self, channel: &ChannelId, voucher: &datatransfer_fsm::Voucher) -> Validation {
        let found = self
            .revalidators
            .iter()
            .find(|(type_id, _)| type_id == &voucher.voucher_type);
        match found {
            Some((_, revalidator)) => revalidator
                .revalidate(channel, &voucher.node)
                .into_validation(),
            None => unknown_type(&voucher.voucher_type),
        }
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("voucher_types", &self.validators.keys().collect::<Vec<_>>())
            .field(
                "revalidators",
                &self.revalidators.iter().map(|(t, _)| t).collect::<Vec<_>>(),
            )
            .field("result_types", &self.results.keys().collect::<Vec<_>>())
            .field("configurers", &self.configurers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Checks that a node decodes as one registered voucher-result type.
#[derive(Clone, Copy)]
struct ResultDecoder(fn(&Node) -> Result<(), VoucherError>);

/// Go's text for a voucher type without a registered decoder.
fn unknown_type(type_id: &TypeIdentifier) -> Validation {
    Validation::new(Verdict::Reject(format!("unknown voucher type: {type_id}")))
}

fn undecodable(type_id: &str, error: &VoucherError) -> Decision {
    Decision::reject(format!("decoding voucher of type {type_id}: {error}"))
}

struct ErasedRequest<'a> {
    is_restart: bool,
    pull: bool,
    channel: &'a ChannelId,
    voucher: &'a Node,
    base_cid: &'a Cid,
    selector: &'a Node,
}

trait ErasedValidator: Send + Sync {
    fn validate(&self, question: &ErasedRequest<'_>) -> Decision;
}

struct TypedValidator<V, T> {
    validator: T,
    voucher: PhantomData<fn() -> V>,
}

impl<V: Voucher, T: RequestValidator<V>> ErasedValidator for TypedValidator<V, T> {
    fn validate(&self, question: &ErasedRequest<'_>) -> Decision {
        let voucher = match V::from_node(question.voucher) {
            Ok(voucher) => voucher,
            Err(error) => return undecodable(V::TYPE, &error),
        };
        let request = Request {
            is_restart: question.is_restart,
            channel: question.channel,
            initiator: &question.channel.initiator,
            voucher: &voucher,
            base_cid: question.base_cid,
            selector: question.selector,
        };
        if question.pull {
            self.validator.validate_pull(&request)
        } else {
            self.validator.validate_push(&request)
        }
    }
}

trait ErasedRevalidator: Send + Sync {
    fn revalidate(&self, channel: &ChannelId, voucher: &Node) -> Decision;
    fn hook(&self, channel: &ChannelId, hook: Hook) -> Option<Decision>;
}

struct TypedRevalidator<V, T> {
    revalidator: T,
    voucher: PhantomData<fn() -> V>,
}

impl<V: Voucher, T: Revalidator<V>> ErasedRevalidator for TypedRevalidator<V, T> {
    fn revalidate(&self, channel: &ChannelId, voucher: &Node) -> Decision {
        match V::from_node(voucher) {
            Ok(voucher) => self.revalidator.revalidate(channel, &voucher),
            Err(error) => undecodable(V::TYPE, &error),
        }
    }

    fn hook(&self, channel: &ChannelId, hook: Hook) -> Option<Decision> {
        match hook {
            Hook::PullDataSent(bytes) => self.revalidator.on_pull_data_sent(channel, bytes),
            Hook::PushDataReceived(bytes) => self.revalidator.on_push_data_received(channel, bytes),
            Hook::Complete => self.revalidator.on_complete(channel),
        }
    }
}

trait ErasedConfigurer: Send + Sync {
    fn configure(
        &self,
        channel: &ChannelId,
        voucher: &Node,
        transport: &dyn Any,
    ) -> Option<StoreName>;
}

struct TypedConfigurer<V, T> {
    configurer: T,
    voucher: PhantomData<fn() -> V>,
}

impl<V: Voucher, T: TransportConfigurer<V>> ErasedConfigurer for TypedConfigurer<V, T> {
    fn configure(
        &self,
        channel: &ChannelId,
        voucher: &Node,
        transport: &dyn Any,
    ) -> Option<StoreName> {
        // A voucher that does not decode was rejected by its validator; nothing to configure.
        let voucher = V::from_node(voucher).ok()?;
        self.configurer.configure(channel, &voucher, transport)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use datatransfer_message::{PeerId, TransferId};

    use super::*;

    #[derive(Debug, PartialEq)]
    struct Deal(u64);

    impl Voucher for Deal {
        const TYPE: &'static str = "test/deal";
        fn to_node(&self) -> Node {
            Node::Integer(i128::from(self.0))
        }
        fn from_node(node: &Node) -> Result<Self, VoucherError> {
            node.as_integer()
                .and_then(|n| u64::try_from(n).ok())
                .map(Deal)
                .ok_or_else(|| VoucherError::Invalid {
                    reason: format!("expected an unsigned integer, found {}", node.kind()),
                })
        }
    }

    impl VoucherResult for Deal {
        const TYPE: &'static str = "test/deal-result";
        fn to_node(&self) -> Node {
            Node::Integer(i128::from(self.0))
        }
        fn from_node(node: &Node) -> Result<Self, VoucherError> {
            <Deal as Voucher>::from_node(node)
        }
    }

    /// Accepts deals below 100, pauses 100, rejects the rest; pushes are rejected.
    struct Limit;

    impl RequestValidator<Deal> for Limit {
        fn validate_push(&self, _: &Request<'_, Deal>) -> Decision {
            Decision::reject("no pushes")
        }
        fn validate_pull(&self, request: &Request<'_, Deal>) -> Decision {
            match request.voucher.0 {
                0..100 => Decision::accept().with_result(&Deal(request.voucher.0 + 1)),
                100 => Decision::pause(),
                _ => Decision::reject("too much"),
            }
        }
    }

    struct Pay;

    impl Revalidator<Deal> for Pay {
        fn revalidate(&self, _: &ChannelId, voucher: &Deal) -> Decision {
            if voucher.0 > 0 {
                Decision::resume()
            } else {
                Decision::reject("unpaid")
            }
        }
        fn on_pull_data_sent(&self, _: &ChannelId, bytes: u64) -> Option<Decision> {
            (bytes > 10).then(Decision::pause)
        }
    }

    fn channel() -> ChannelId {
        ChannelId::new(
            PeerId::from_bytes(vec![1]),
            PeerId::from_bytes(vec![2]),
            TransferId(9),
        )
    }

    fn open(pull: bool, voucher: datatransfer_fsm::Voucher) -> ValidationKind {
        ValidationKind::Open {
            pull,
            voucher,
            base_cid: "QmTTA2daxGqo5denp6SwLzzkLJm3fuisYEi9CoWsuHpzfb"
                .parse()
                .expect("a valid constant cid"),
            selector: Node::empty_map(),
        }
    }

    #[test]
    fn registered_validator_decides_by_direction_and_value() {
        let mut registry = Registry::new();
        registry.register_voucher_type(Limit).expect("first");
        let ask =
            |pull, n| registry.answer(&channel(), &open(pull, crate::encode_voucher(&Deal(n))));
        let accepted = ask(true, 5);
        assert_eq!(accepted.verdict, Verdict::Accept);
        assert_eq!(
            accepted.result,
            Some(crate::encode_result(&Deal(6))),
            "the result travels with the answer"
        );
        assert_eq!(ask(true, 100).verdict, Verdict::Pause);
        assert_eq!(ask(true, 101).verdict, Verdict::Reject("too much".into()));
        assert_eq!(ask(false, 1).verdict, Verdict::Reject("no pushes".into()));
    }

    #[test]
    fn unknown_voucher_type_is_rejected_with_go_text() {
        let registry = Registry::new();
        let voucher = datatransfer_fsm::Voucher::new("nobody/knows", Node::Null);
        let answer = registry.answer(&channel(), &open(true, voucher));
        assert_eq!(
            answer.verdict,
            Verdict::Reject("unknown voucher type: nobody/knows".into())
        );
        assert_eq!(answer.result, None);
    }

    #[test]
    fn undecodable_voucher_is_rejected_not_panicking() {
        let mut registry = Registry::new();
        registry.register_voucher_type(Limit).expect("first");
        registry.register_revalidator(Pay).expect("first");
        let bad = datatransfer_fsm::Voucher::new(<Deal as Voucher>::TYPE, Node::text("x"));
        for kind in [
            open(true, bad.clone()),
            ValidationKind::Voucher { voucher: bad },
        ] {
            let answer = registry.answer(&channel(), &kind);
            match answer.verdict {
                Verdict::Reject(reason) => assert!(
                    reason.starts_with("decoding voucher of type test/deal: invalid voucher"),
                    "{reason}"
                ),
                other => panic!("expected a rejection, got {other:?}"),
            }
        }
    }

    #[test]
    fn double_registration_is_an_error_per_registry() {
        let mut registry = Registry::new();
        registry.register_voucher_type(Limit).expect("first");
        registry
            .register_revalidator(Pay)
            .expect("another registry");
        registry
            .register_voucher_result_type::<Deal>()
            .expect("first");
        registry
            .register_transport_configurer(|_: &ChannelId, _: &Deal, _: &dyn Any| None)
            .expect("first");
        let expected = |registry: &'static str, name: &str| RegistryError::AlreadyRegistered {
            registry,
            type_id: TypeIdentifier::new(name),
        };
        assert_eq!(
            registry.register_voucher_type(Limit),
            Err(expected("voucher", "test/deal"))
        );
        assert_eq!(
            registry.register_revalidator(Pay),
            Err(expected("revalidator", "test/deal"))
        );
        assert_eq!(
            registry.register_voucher_result_type::<Deal>(),
            Err(expected("voucher result", "test/deal-result"))
        );
        assert_eq!(
            registry.register_transport_configurer(|_: &ChannelId, _: &Deal, _: &dyn Any| None),
            Err(expected("transport configurer", "test/deal"))
        );
    }

    #[test]
    fn revalidation_and_hooks_use_the_revalidator() {
        let mut registry = Registry::new();
        assert_eq!(registry.hook(&channel(), Hook::PullDataSent(50)), None);
        registry.register_revalidator(Pay).expect("first");
        let voucher = |n| ValidationKind::Voucher {
            voucher: crate::encode_voucher(&Deal(n)),
        };
        assert_eq!(
            registry.answer(&channel(), &voucher(3)).verdict,
            Verdict::Resume
        );
        assert_eq!(
            registry.answer(&channel(), &voucher(0)).verdict,
            Verdict::Reject("unpaid".into())
        );
        assert_eq!(registry.hook(&channel(), Hook::PullDataSent(5)), None);
        assert_eq!(
            registry
                .hook(&channel(), Hook::PullDataSent(50))
                .map(|v| v.verdict),
            Some(Verdict::Pause)
        );
        assert_eq!(registry.hook(&channel(), Hook::PushDataReceived(50)), None);
        // With no revalidator handling completion, the question is answered with Accept.
        assert_eq!(
            registry
                .answer(&channel(), &ValidationKind::Complete)
                .verdict,
            Verdict::Accept
        );
    }

    #[test]
    fn results_check_against_registered_types_and_configurers_run() {
        let mut registry = Registry::new();
        let result = crate::encode_result(&Deal(4));
        assert_eq!(registry.check_result(&result), Ok(false));
        registry
            .register_voucher_result_type::<Deal>()
            .expect("first");
        assert_eq!(registry.check_result(&result), Ok(true));
        let bad = datatransfer_fsm::VoucherResult::new("test/deal-result", Node::Null);
        assert!(registry.check_result(&bad).is_err());

        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        registry
            .register_transport_configurer(move |_: &ChannelId, deal: &Deal, t: &dyn Any| {
                let tag = t.downcast_ref::<&str>().copied().unwrap_or("other");
                log.lock().expect("test lock").push((deal.0, tag));
                Some(StoreName::new(format!("deal-{}", deal.0)))
            })
            .expect("first");
        let store = registry.configure(&channel(), &crate::encode_voucher(&Deal(8)), &"mem");
        assert_eq!(store, Some(StoreName::new("deal-8")));
        let other = datatransfer_fsm::Voucher::new("other", Node::Null);
        assert_eq!(registry.configure(&channel(), &other, &"mem"), None);
        assert_eq!(*seen.lock().expect("test lock"), vec![(8, "mem")]);
    }
}
