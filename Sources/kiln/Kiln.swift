import ArgumentParser

@main
struct Kiln: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln",
        abstract:
            "Kiln operator CLI: run the stack locally, inspect and merge pprof files, run benchmarks, manage topics and blocks, report regressions.",
        subcommands: [
            DevCommand.self, InspectCommand.self, MergeCommand.self, BlocksCommand.self, TopicsCommand.self, ReplayCommand.self,
            BenchCommand.self, LoadGenCommand.self, ReportCommand.self,
        ]
    )
}
