import CortexControl
import CortexCore
import Foundation
import Testing

@Suite(.serialized) struct BudgetLedgerTests {
    @Test func reserveCommitReleaseAndTransfer() async throws {
        let redis = try await PrivateRedis.start()
        defer { Task { await redis.stop() } }
        let ledger = BudgetLedger(redis: RedisClient(endpoint: redis.endpoint), runID: "run-b")
        try await ledger.open(["development": 30_000, "development:workers": 1_000, "reserve": 25_000])
        let r = try await ledger.reserve(800, from: ["development:workers", "development"])
        var accounts = Dictionary(uniqueKeysWithValues: try await ledger.accounts().map { ($0.name, $0) })
        #expect(accounts["development:workers"]?.reserved == 800 && accounts["development"]?.reserved == 800)
        // All or nothing: the worker budget cannot cover 300 more, so neither account is touched.
        await #expect(throws: BudgetLedger.Refusal(account: "development:workers", requested: 300, available: 200)) {
            try await ledger.reserve(300, from: ["development:workers", "development"])
        }
        #expect(try await ledger.commit(r, actual: 640))
        #expect(try await ledger.commit(r, actual: 640) == false)  // settled once
        accounts = Dictionary(uniqueKeysWithValues: try await ledger.accounts().map { ($0.name, $0) })
        #expect(accounts["development:workers"] == .init(name: "development:workers", limit: 1_000, reserved: 0, used: 640))
        let failed = try await ledger.reserve(100, from: ["development:workers"])
        #expect(try await ledger.release(failed))
        try await ledger.transfer(10_000, from: "reserve", to: "development:workers")
        await #expect(throws: BudgetLedger.Refusal.self) { try await ledger.transfer(20_000, from: "reserve", to: "development") }
        accounts = Dictionary(uniqueKeysWithValues: try await ledger.accounts().map { ($0.name, $0) })
        #expect(accounts["development:workers"]?.available == 10_360)
        #expect(accounts["reserve"]?.limit == 15_000)
    }

    /// Four processes, eight reservations in flight each, against budgets that cannot cover them all.
    @Test func concurrentProcessesNeverOverspend() async throws {
        let redis = try await PrivateRedis.start()
        defer { Task { await redis.stop() } }
        let client = RedisClient(endpoint: redis.endpoint)
        let ledger = BudgetLedger(redis: client, runID: "run-c")
        var limits = ["development:workers": 5_000]
        for k in 1...4 { limits["worker-\(k)"] = 2_000 }
        try await ledger.open(limits)
        let dir = try temporaryDirectory("cortex-ledger")
        let supervisor = try ProcessSupervisor(logDirectory: dir)
        let lab = try ExecutableLocator.path(of: "cortex-lab", in: binDirectory)
        let hammers = try (1...4).map { k in
            try supervisor.start(name: "hammer-\(k)", executable: lab, arguments: [
                "ledger-hammer", "--redis", redis.server.url, "--run", "run-c", "--accounts", "worker-\(k),development:workers",
                "--attempts", "200", "--amount", "37", "--concurrency", "8",
            ])
        }
        var granted = 0, used = 0
        for h in hammers {
            #expect(await h.wait(timeout: .seconds(60)) == 0, "\(h.output())")
            let line = try #require(h.output().split(separator: "\n").last { $0.hasPrefix("{") })
            let summary = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Int]
            granted += summary["granted"]!
            used += summary["used"]!
            #expect(summary["granted"]! + summary["refused"]! == 200)
        }
        let accounts = Dictionary(uniqueKeysWithValues: try await ledger.accounts().map { ($0.name, $0) })
        let master = try #require(accounts["development:workers"])
        #expect(master.used == used)
        #expect(master.used <= master.limit)
        #expect(master.reserved == 0)
        #expect(master.available < 37)  // contention used the budget up, and no further
        for k in 1...4 {
            let w = try #require(accounts["worker-\(k)"])
            #expect(w.used <= w.limit && w.reserved == 0)
        }
        #expect(granted > 0 && granted < 800)
    }
}
