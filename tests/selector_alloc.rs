//! T18: a parsed selector evaluates, and a topic matcher matches, without allocating (a counting
//! global allocator; this file holds one test so nothing else allocates meanwhile).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use mqlite::selector::{Selector, SelectorInput, TopicMatcher};
use mqlite::{Message, MessageId, Value};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A stored message with an id, so `JMSMessageID` is compared as text.
struct Stored(Message);

impl SelectorInput for Stored {
    fn property_value(&self, name: &str) -> Option<&Value> {
        self.0.property_value(name)
    }
    fn jms_priority(&self) -> u8 {
        self.0.jms_priority()
    }
    fn jms_timestamp_ms(&self) -> u64 {
        1
    }
    fn jms_correlation_id(&self) -> Option<&str> {
        self.0.jms_correlation_id()
    }
    fn jms_message_id(&self) -> Option<MessageId> {
        Some(MessageId(123_456))
    }
    fn jms_persistent(&self) -> bool {
        true
    }
    fn jms_redelivered(&self) -> bool {
        false
    }
    fn jms_expiration_ms(&self) -> u64 {
        0
    }
    fn jmsx_group_id(&self) -> Option<&str> {
        None
    }
    fn jmsx_delivery_count(&self) -> u32 {
        1
    }
}

#[test]
fn t18_evaluation_does_not_allocate() {
    let selectors: Vec<Selector> = [
        "amount > 100 AND region IN ('eu', 'uk') AND NOT urgent",
        "name LIKE 'ord%\\_x' ESCAPE '\\' OR name NOT LIKE '_a%'",
        "JMSMessageID = 'ID:123456' AND JMSMessageID LIKE 'ID:1%' AND JMSMessageID IN ('ID:123456')",
        "(amount * 2 + ratio / 3) BETWEEN 10 AND 1000 AND missing IS NULL",
        "JMSPriority >= 4 AND JMSDeliveryMode = 'PERSISTENT' AND JMSCorrelationID <> 'x'",
        "region = 1 OR amount / 0 = 1 OR ratio / 0.0 < 1",
    ]
    .iter()
    .map(|t| Selector::parse(t).unwrap())
    .collect();
    let m = Stored(
        Message::new("m")
            .property("amount", 150i64)
            .property("ratio", 0.5f64)
            .property("region", "eu")
            .property("urgent", false)
            .property("name", "order_x")
            .correlation_id("c"),
    );
    let mut matcher = TopicMatcher::new();
    for (i, p) in ["orders.*.created", "orders.>", "stock.>", "*.eu.*"]
        .iter()
        .enumerate()
    {
        matcher.insert(p, i).unwrap();
    }
    let mut selected = 0;
    let mut routed = 0;
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..1000 {
        for s in &selectors {
            selected += usize::from(s.matches(&m));
        }
        matcher.for_each_match("orders.eu.created", |_| routed += 1);
    }
    let allocations = ALLOCATIONS.load(Ordering::SeqCst) - before;
    assert_eq!(allocations, 0, "evaluation allocated");
    // The counter is live: parsing allocates.
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let _ = Selector::parse("a = 1").unwrap();
    assert!(ALLOCATIONS.load(Ordering::SeqCst) > before);
    assert_eq!(
        selected, 5000,
        "every selector but the last selects the message"
    );
    assert_eq!(routed, 3000);
}
