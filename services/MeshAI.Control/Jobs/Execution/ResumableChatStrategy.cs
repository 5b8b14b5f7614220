using Google.Protobuf;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Control.Networks;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Logging;

namespace MeshAI.Control.Jobs.Execution;

/// <summary>
/// A small_chat job whose stream survives a dead device (docs/chat-resume.md): every token published to the
/// watchers is also kept (its resume form: plaintext, or sealed under the job's resume key for an end-to-end encrypted
/// job); when the attempt that streamed them is lost, the retry's offer carries them (<see cref="StreamResume"/>, bound by
/// the ticket), the next device continues the text after them and numbers its tokens on, so the watchers see every index
/// exactly once. Each interrupted attempt that streamed tokens becomes its own execution record (chunk "attempt-N"),
/// settled with the final result — the submitter pays each device for the time it actually streamed.
/// </summary>
internal sealed class ResumableChatStrategy : SingleJobStrategy
{
    private readonly List<ResumeToken> _delivered = [];
    private readonly Dictionary<int, List<long>> _tokenTimes = [];
    private readonly List<JobMeteringRow> _segments = [];
    private long _deliveredBytes;
    private readonly HashSet<int> _claimed = [];
    private string? _cannotResume;

    protected override IReadOnlyList<JobMeteringRow> PendingSegments => _segments;

    protected override void OnToken(JobExecution job, AgentReport r, JobToken token)
    {
        if (!job.TryGetOpen(r.Device, r.Attempt, out _))
        {
            return; // a late token of an attempt already given up: the retry continues from what was published
        }

        if (token.Index != _delivered.Count)
        {
            // A duplicate (index below) or a gap (above) never reaches the watchers: the stream stays 0, 1, 2, … once each.
            job.Log.LogWarning("Job {JobId} attempt {Attempt}: token index {Index} dropped, expected {Expected}", job.JobId, r.Attempt, token.Index, _delivered.Count);
            return;
        }

        var encrypted = PayloadEncrypted(job);
        var resume = encrypted
            ? new ResumeToken { Index = token.Index, Text = token.ResumeText, Nonce = token.ResumeNonce }
            : new ResumeToken { Index = token.Index, Text = token.Token };
        if (encrypted && token.ResumeText.IsEmpty)
        {
            _cannotResume ??= "the device streamed an encrypted token without its resume form";
        }

        _deliveredBytes += resume.Text.Length + resume.Nonce.Length;
        if (_deliveredBytes > job.S.Options.MaxResumeBytes)
        {
            _cannotResume ??= $"the delivered stream is over {job.S.Options.MaxResumeBytes} bytes (Jobs:MaxResumeBytes)";
        }

        _delivered.Add(resume);
        (_tokenTimes.TryGetValue(r.Attempt, out var times) ? times : _tokenTimes[r.Attempt] = []).Add(job.NowMs);
        job.S.Hub.Publish(job.JobId, TokenFrame(token));
    }

    protected override (StreamResume? Resume, string Detail) NextOffer(JobExecution job) => _delivered.Count == 0
        ? (null, "")
        : (new StreamResume { NextIndex = _delivered.Count, Tokens = { _delivered } }, $"resumes the stream after {_delivered.Count} delivered token(s)");

    protected override async Task<string?> AttemptEndedAsync(JobExecution job, Placement placement, CancellationToken ct)
    {
        if (_claimed.Contains(placement.Attempt))
        {
            return "chat stream cannot resume: its control instance changed while it streamed (the delivered tokens were held there)";
        }

        if (!_tokenTimes.TryGetValue(placement.Attempt, out var times) || times.Count == 0)
        {
            return null; // nothing streamed: a plain retry
        }

        if (_cannotResume is not null)
        {
            return "chat stream cannot resume: " + _cannotResume;
        }

        // The interrupted segment: the device streamed part of the answer the next one continues from — meter it now (control's
        // own observation of its runtime), settle it with the final result.
        var (row, network, device) = await job.S.Jobs.GetSettlementInputsAsync(job.JobId, job.NetworkId, placement.DeviceId, ct);
        if (row is null || network is null || device is null)
        {
            return "chat stream cannot resume: the job, its network or the device that streamed is gone";
        }

        var credits = ParsedCredits.Of(network.SettingsJson);
        var prior = _segments.Sum(m => Ledger.LedgerPricing.Price(m).BurnMicro);
        _segments.Add(await job.S.LedgerWriter.MeterStreamSegmentAsync(row, placement.Attempt, device, placement.StartedMs, times, prior, credits, job.NowMs, ct));
        job.Log.LogInformation("Job {JobId} attempt {Attempt} on {DeviceId} ended after {Tokens} streamed token(s); the retry resumes after {Delivered}", job.JobId, placement.Attempt, placement.DeviceId, times.Count, _delivered.Count);
        return null;
    }

    // A stream that could not resume elsewhere waits for its device instead (a hedge would end the job).
    protected override bool CanHedge(JobExecution job, Placement placement) => _cannotResume is null && !_claimed.Contains(placement.Attempt);

    // Once a later attempt continued the stream, only the newest attempt's answer matches what the watchers saw.
    protected override bool AcceptsResult(JobExecution job, int attempt) => _delivered.Count == 0 || attempt == job.LastAttempt;

    protected override void OnClaimed(JobExecution job, ResumeRequested r)
    {
        // The delivered tokens lived in the previous owner's memory: a retry here could not continue without repeating or
        // skipping tokens, so a claimed chat that already ran an attempt fails instead of retrying (docs/chat-resume.md).
        if (r.Attempts.Count > 0)
        {
            _claimed.UnionWith(r.Attempts.Select(a => a.Attempt));
        }
    }

    private static bool PayloadEncrypted(JobExecution job) => Common.Crypto.PayloadCrypto.IsEncrypted(job.Envelope);
}
