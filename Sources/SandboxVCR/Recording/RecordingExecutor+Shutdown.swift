extension RecordingExecutor {
    /// Shuts down the live executor, if there is one (a replay-only executor holds nothing to release).
    ///
    /// The cassette is not flushed or closed here: its owner does that after shutting the executor down.
    public func shutdown() async {
        await live?.shutdown()
    }
}
