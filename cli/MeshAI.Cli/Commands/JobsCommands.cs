using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using MeshAI.Cli.Output;
using MeshAI.Client;
using MeshAI.Contracts.Job.V1;

namespace MeshAI.Cli.Commands;

/// <summary>`meshnet jobs list|get|explain|cancel`.</summary>
public static class JobsCommands
{
    /// <summary>The `jobs` command group.</summary>
    public static Command Build(CliRuntime runtime)
    {
        var jobs = new Command("jobs", "Inspect jobs");
        jobs.Add(List(runtime));
        jobs.Add(Get(runtime));
        jobs.Add(Explain(runtime));
        jobs.Add(Cancel(runtime));
        return jobs;
    }

    /// <summary>The recent-runs table (workloads tab: status, latency, cost, node used).</summary>
    public static TextTable Table(IEnumerable<Job> jobs)
    {
        var table = new TextTable("ID", "WORKLOAD", "STATE", "DEVICE", "TIER", "LATENCY>", "COST>", "CREATED");
        foreach (var job in jobs)
        {
            table.Add(job.JobId, Display.Name(job.WorkloadId), Display.Name(job.State), Blank(job.DeviceId), Display.Name(job.Tier),
                Display.Millis(job.LatencyMs), Credits.Format(job.CostMicro), Display.Time(job.CreateTime));
        }

        return table;
    }

    /// <summary>Human rendering of one job, its attempts and a summary of its result.</summary>
    public static void WriteJob(TextWriter writer, Job job, JobResultFrame? result)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(job);
        var fields = new TextTable("FIELD", "VALUE");
        fields.Add("job", job.JobId);
        fields.Add("network", job.NetworkId);
        fields.Add("workload", Display.Name(job.WorkloadId));
        fields.Add("state", Display.Name(job.State));
        fields.Add("routing", Display.Name(job.RoutingMode));
        fields.Add("sensitivity", Display.Name(job.DataSensitivityTag));
        fields.Add("device", Blank(job.DeviceId));
        fields.Add("tier", Display.Name(job.Tier));
        fields.Add("created", Display.Time(job.CreateTime));
        fields.Add("started", Display.Time(job.StartTime));
        fields.Add("ended", Display.Time(job.EndTime));
        fields.Add("latency", Display.Millis(job.LatencyMs));
        fields.Add("runtime", $"{Display.Millis(job.RuntimeMs)} (billed {Display.Millis(job.BilledRuntimeMs)})");
        fields.Add("cost", Credits.Format(job.CostMicro) + " credits" + (CapMicro(job) > 0 ? $" (cap {Credits.Format(CapMicro(job))})" : ""));
        if (job.ChunkCount > 0)
        {
            fields.Add("chunks", $"{job.ChunksCompleted}/{job.ChunkCount}");
        }

        if (job.RelayBytes > 0)
        {
            fields.Add("relay bytes", Display.Int(job.RelayBytes));
        }

        fields.Add("trace", Blank(job.TraceId));
        if (!string.IsNullOrEmpty(job.ErrorMessage))
        {
            fields.Add("error", job.ErrorMessage);
        }

        if (result is not null)
        {
            fields.Add("result", ResultSummary(result, job));
        }

        fields.WriteTo(writer);
        if (job.Attempts.Count > 0)
        {
            writer.WriteLine();
            writer.WriteLine("Attempts");
            AttemptsTable(job.Attempts).WriteTo(writer);
        }
    }

    /// <summary>Human rendering of the job debug view: eligibility, top candidates with feature scores, selection and retries.</summary>
    public static void WriteExplain(TextWriter writer, JobDebugView view, Google.Protobuf.WellKnownTypes.Timestamp? placementTime)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(view);
        writer.WriteLine($"Job {view.JobId}");
        writer.WriteLine($"Selected device: {Blank(view.SelectedDeviceId)}" + (placementTime is null ? "" : $" (placed {Display.Time(placementTime)})"));
        writer.WriteLine($"Why: {Blank(view.SelectionReason)}");

        writer.WriteLine();
        writer.WriteLine("Eligibility");
        var eligibility = new TextTable("DEVICE", "ELIGIBLE", "FAILED FILTER", "REASON");
        foreach (var e in view.Eligibility)
        {
            eligibility.Add(e.DeviceId, e.Eligible ? "yes" : "no", Display.Name(e.FailingFilter), Blank(e.Reason));
        }

        WriteOrNone(writer, eligibility);

        writer.WriteLine();
        writer.WriteLine("Top candidates");
        var candidates = new TextTable("RANK>", "DEVICE", "SCORE>", "SAME LAN", "FEATURES (raw → normalized × weight = contribution)");
        var rank = 1;
        foreach (var c in view.TopCandidates)
        {
            var features = string.Join("; ", c.Features.Select(f =>
                $"{f.Name} {F(f.RawValue)} → {F(f.NormalizedValue)} × {F(f.Weight)} = {F(f.Contribution)}"));
            candidates.Add(Display.Int(rank++), c.DeviceId, c.Total.ToString("F4", CultureInfo.InvariantCulture), c.SameLan ? "yes" : "no", features);
        }

        WriteOrNone(writer, candidates);

        writer.WriteLine();
        writer.WriteLine("Retries");
        if (view.Retries.Count == 0)
        {
            writer.WriteLine("  (none)");
        }
        else
        {
            AttemptsTable(view.Retries).WriteTo(writer);
        }
    }

    private static TextTable AttemptsTable(IEnumerable<JobAttempt> attempts)
    {
        var table = new TextTable("ATTEMPT>", "DEVICE", "CAUSE", "CHUNK", "STARTED", "ENDED", "DETAIL");
        foreach (var a in attempts)
        {
            table.Add(Display.Int(a.Attempt), a.DeviceId, Display.Name(a.Cause), Blank(a.ChunkId), Display.Time(a.StartTime), Display.Time(a.EndTime), Blank(a.Detail));
        }

        return table;
    }

    private static string ResultSummary(JobResultFrame result, Job job)
    {
        if (result.Encrypted)
        {
            return $"{result.Output.Length} bytes, encrypted to the submitter";
        }

        try
        {
            var output = MeshClient.DecodeOutput(result, job);
            return output.OutputCase switch
            {
                WorkloadOutput.OutputOneofCase.Embeddings => $"{output.Embeddings.Embeddings.Count} embeddings, dimension {output.Embeddings.Dimension}, model {Blank(output.Embeddings.Model)}",
                WorkloadOutput.OutputOneofCase.Echo => $"echo \"{Display.Clip(output.Echo.Data.ToStringUtf8(), 60)}\"",
                WorkloadOutput.OutputOneofCase.Ocr => $"ocr \"{Display.Clip(output.Ocr.Text, 60)}\"",
                WorkloadOutput.OutputOneofCase.Chat => $"chat \"{Display.Clip(output.Chat.Text, 60)}\"",
                WorkloadOutput.OutputOneofCase.Transcribe => $"transcript \"{Display.Clip(output.Transcribe.Text, 60)}\"",
                WorkloadOutput.OutputOneofCase.Batch => $"{output.Batch.Results.Count} batch results",
                _ => $"{result.Output.Length} bytes",
            };
        }
        catch (MeshJobException ex)
        {
            return ex.Message;
        }
    }

    private static void WriteOrNone(TextWriter writer, TextTable table)
    {
        if (table.Count == 0)
        {
            writer.WriteLine("  (none)");
        }
        else
        {
            table.WriteTo(writer);
        }
    }

    private static string F(double value) => value.ToString("0.###", CultureInfo.InvariantCulture);

    private static string Blank(string? value) => string.IsNullOrEmpty(value) ? "-" : value;

    private static Command List(CliRuntime runtime)
    {
        var network = CliRuntime.NetworkOption();
        var limit = new Option<int>("--limit") { Description = "How many recent jobs", DefaultValueFactory = _ => 20 };
        var command = new Command("list", "Recent jobs of the network") { network, limit };
        command.Aliases.Add("ls");
        runtime.Bind(command, async ctx =>
        {
            var networkId = await ctx.NetworkIdAsync(network);
            using var client = await ctx.ConnectAsync();
            var response = await client.Jobs.ListJobsAsync(
                new ListJobsRequest { NetworkId = networkId, PageSize = Math.Max(1, ctx.Get(limit)) },
                deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken);
            if (ctx.Json)
            {
                ctx.WriteJson(response);
            }
            else if (response.Jobs.Count == 0)
            {
                ctx.Out.WriteLine($"No jobs in {networkId} yet. Try: meshnet run echo --data hello");
            }
            else
            {
                Table(response.Jobs).WriteTo(ctx.Out);
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Get(CliRuntime runtime)
    {
        var id = new Argument<string>("ID") { Description = "Job id (job_…)" };
        var network = CliRuntime.NetworkOption();
        var command = new Command("get", "One job with its attempts") { id, network };
        runtime.Bind(command, async ctx =>
        {
            var networkId = await ctx.NetworkIdAsync(network);
            using var client = await ctx.ConnectAsync();
            var response = await client.Jobs.GetJobAsync(
                new GetJobRequest { NetworkId = networkId, JobId = ctx.Get(id)!.Trim() }, deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken);
            if (ctx.Json)
            {
                var node = JsonOutput.Node(response).AsObject();
                if (response.Result is { Encrypted: false } result)
                {
                    try
                    {
                        node["output"] = JsonOutput.Node(MeshClient.DecodeOutput(result, response.Job));
                    }
                    catch (MeshJobException)
                    {
                        // The raw bytes are still in result.output.
                    }
                }

                ctx.WriteJson(node);
            }
            else
            {
                WriteJob(ctx.Out, response.Job ?? new Job(), response.Result);
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Explain(CliRuntime runtime)
    {
        var id = new Argument<string>("ID") { Description = "Job id (job_…)" };
        var network = CliRuntime.NetworkOption();
        var command = new Command("explain", "Why the scheduler placed a job where it did") { id, network };
        runtime.Bind(command, async ctx =>
        {
            var networkId = await ctx.NetworkIdAsync(network);
            using var client = await ctx.ConnectAsync();
            var response = await client.Jobs.ExplainJobAsync(
                new ExplainJobRequest { NetworkId = networkId, JobId = ctx.Get(id)!.Trim() }, deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken);
            if (ctx.Json)
            {
                ctx.WriteJson(response);
            }
            else
            {
                WriteExplain(ctx.Out, response.DebugView ?? new JobDebugView { JobId = ctx.Get(id)! }, response.PlacementTime);
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Cancel(CliRuntime runtime)
    {
        var id = new Argument<string>("ID") { Description = "Job id (job_…)" };
        var network = CliRuntime.NetworkOption();
        var command = new Command("cancel", "Cancel a queued or running job") { id, network };
        runtime.Bind(command, async ctx =>
        {
            var networkId = await ctx.NetworkIdAsync(network);
            using var client = await ctx.ConnectAsync();
            var response = await client.Jobs.CancelJobAsync(
                new CancelJobRequest { NetworkId = networkId, JobId = ctx.Get(id)!.Trim() }, deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken);
            if (ctx.Json)
            {
                ctx.WriteJson(response);
            }
            else
            {
                ctx.Out.WriteLine($"Job {response.Job?.JobId ?? ctx.Get(id)} is {Display.Name(response.Job?.State ?? JobState.Cancelled)}.");
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    // Servers before max_cost_micro filled only the alias (which always held micro-credits).
    private static long CapMicro(Job job) => job.MaxCostMicro != 0 ? job.MaxCostMicro : job.MaxCostCredits;
}
