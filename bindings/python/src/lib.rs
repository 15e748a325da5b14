//! mqlite's Python face: the private native module `mqlite._mqlite`, re-exported by the
//! `mqlite` package (`python/mqlite/__init__.py`). Thin by design: every decision (durability,
//! redelivery, dead-lettering) is the core's; this crate converts values, releases the GIL
//! around blocking calls, and completes futures.

mod completer;
mod consumer;
mod convert;
mod errors;
mod message;
mod queue;
mod store;
mod topic;
mod txn;

use pyo3::prelude::*;

#[pymodule]
fn _mqlite(m: &Bound<'_, PyModule>) -> PyResult<()> {
    store::init_fork_handling();
    errors::register(m)?;
    m.add_function(wrap_pyfunction!(store::open, m)?)?;
    m.add_function(wrap_pyfunction!(completer::_aio_complete, m)?)?;
    m.add_function(wrap_pyfunction!(completer::_on_callback_thread, m)?)?;
    m.add_class::<store::Store>()?;
    m.add_class::<store::RedeliveryPolicy>()?;
    m.add_class::<store::DeadLetterStrategy>()?;
    m.add_class::<store::ManualClock>()?;
    m.add_class::<queue::Queue>()?;
    m.add_class::<topic::Topic>()?;
    m.add_class::<queue::Consume>()?;
    m.add_class::<consumer::Consumer>()?;
    m.add_class::<consumer::Listener>()?;
    m.add_class::<message::Message>()?;
    m.add_class::<txn::Transaction>()?;
    m.add_class::<message::DeadLetterInfo>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    let close_all = wrap_pyfunction!(store::_close_open_stores, m)?;
    m.py()
        .import("atexit")?
        .call_method1("register", (&close_all,))?;
    m.add_function(close_all)?;
    Ok(())
}
