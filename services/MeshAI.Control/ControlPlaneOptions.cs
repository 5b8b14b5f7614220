using System.ComponentModel.DataAnnotations;

namespace MeshAI.Control;

/// <summary>Control-plane settings (configuration section "Control"); every limit is named here with its default.</summary>
public sealed class ControlPlaneOptions
{
    /// <summary>The configuration section these options bind from.</summary>
    public const string Section = "Control";

    /// <summary>Where the SQLite database, master key and outbox live.</summary>
    [Required]
    public string DataDir { get; set; } = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".meshai", "server");

    /// <summary>"sqlite" (embedded default) or "postgres".</summary>
    [RegularExpression("^(sqlite|postgres)$")]
    public string Store { get; set; } = "sqlite";

    /// <summary>Npgsql connection string when Store is "postgres".</summary>
    public string? PostgresConnectionString { get; set; }

    /// <summary>Overrides the public URL reported to devices and written into links (otherwise the host sets it at start).</summary>
    public string? PublicUrl { get; set; }

    /// <summary>
    /// Page of this server that finishes a browser sign-in from a magic link (the dashboard's, set by the host when it serves
    /// one): GET /auth/magic redirects there with the token instead of showing the session token on a bare page.
    /// </summary>
    public string? BrowserSignInPath { get; set; }

    /// <summary>Relay addresses given to registering devices (comma separated; scale-out: every relay instance). Empty: the public URL.</summary>
    public string RelayUrls { get; set; } = "";

    /// <summary><see cref="RelayUrls"/> as a list.</summary>
    public IReadOnlyList<string> RelayUrlList => RelayUrls.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>Outgoing mail for magic links; when SmtpHost is empty, links go to the outbox folder.</summary>
    public SmtpOptions Smtp { get; set; } = new();

    /// <summary>Named limits.</summary>
    public ControlLimits Limits { get; set; } = new();

    /// <summary>Ledger rules (minting, rate limits, estimates, export) and free-tier limits.</summary>
    public Ledger.LedgerOptions Ledger { get; set; } = new();

    /// <summary>The job plane: this instance's id, leases, reconnect grace.</summary>
    public JobPlaneOptions Jobs { get; set; } = new();

    /// <summary>Chunked blobs (section <c>Control:Blobs</c>): size, chunk, in-flight and retention bounds (docs/job-plane.md).</summary>
    public Blobs.BlobOptions Blobs { get; set; } = new();

    /// <summary>Canary jobs: the known-answer table and the canary timeout (docs/anti-abuse.md).</summary>
    public Jobs.Canaries.CanaryOptions Canary { get; set; } = new();
}

/// <summary>Job plane settings (section <c>Control:Jobs</c>); docs/scale-out.md explains how they set the detection times.</summary>
public sealed class JobPlaneOptions
{
    /// <summary>This control instance's id (lease owner); empty: generated per process ("ctl-" + host + random).</summary>
    public string InstanceId { get; set; } = "";

    /// <summary>How long a job's lease lasts without renewal; a dead instance's jobs are claimed after it.</summary>
    [Range(1000, 3_600_000)]
    public int LeaseMs { get; set; } = 10_000;

    /// <summary>How often the owner renews all its leases (one statement per round).</summary>
    [Range(100, 600_000)]
    public int LeaseRenewIntervalMs { get; set; } = 3_000;

    /// <summary>How often an instance looks for jobs whose lease expired.</summary>
    [Range(100, 600_000)]
    public int ClaimIntervalMs { get; set; } = 2_000;

    /// <summary>Most jobs claimed in one round.</summary>
    [Range(1, 10_000)]
    public int ClaimBatch { get; set; } = 100;

    /// <summary>
    /// After a device's stream ends (or a resumed job's device is not connected), how long its open attempts wait for the
    /// device to come back (on any relay) before they are retried elsewhere.
    /// </summary>
    [Range(0, 600_000)]
    public int ReconnectGraceMs { get; set; } = 3_000;

    /// <summary>
    /// A single job whose device's stream ends is re-offered to another eligible device at once (its first attempt may still
    /// deliver: first result wins) instead of waiting <see cref="ReconnectGraceMs"/>; off: always wait (docs/job-plane.md).
    /// </summary>
    public bool HedgeOnDisconnect { get; set; } = true;

    /// <summary>
    /// For a resumed job (restart, claimed lease) whose device is not connected yet: how long to wait for it — every agent
    /// reconnects after a restart, with backoff — before retrying elsewhere.
    /// </summary>
    [Range(0, 600_000)]
    public int ResumeGraceMs { get; set; } = 20_000;

    /// <summary>
    /// RUNNING as soft state (#11): an accepted attempt of a single job without a cost cap is written RUNNING to the store only
    /// when the job is still running this long after the accept; a shorter job goes from PLACED to its end in one durable write
    /// (the settlement carries the start time). The watch stream shows RUNNING at once; a GetJob/ListJobs from the store lags
    /// by at most this long. 0 writes RUNNING at every accept (the old behaviour). docs/job-plane.md "Soft RUNNING".
    /// </summary>
    [Range(0, 60_000)]
    public int RunningWriteDelayMs { get; set; } = 250;

    /// <summary>How long an offer may go unanswered (no accept or decline: lost on a dead relay) before the attempt is retried.</summary>
    [Range(100, 600_000)]
    public int OfferAnswerTimeoutMs { get; set; } = 10_000;

    /// <summary>
    /// Chat resume (docs/chat-resume.md): a small_chat retry continues after the tokens already streamed instead of starting
    /// over. Off: a retry starts a fresh answer (its token indices restart at 0).
    /// </summary>
    public bool ChatResume { get; set; } = true;

    /// <summary>Most bytes of delivered tokens a job keeps for a resume; a longer stream is not resumed (its retry fails the job).</summary>
    [Range(1024, 64 << 20)]
    public int MaxResumeBytes { get; set; } = 2 << 20;
}

/// <summary>SMTP settings for magic-link mail.</summary>
public sealed class SmtpOptions
{
    /// <summary>SMTP server host; empty disables SMTP.</summary>
    public string? Host { get; set; }

    /// <summary>SMTP port.</summary>
    public int Port { get; set; } = 587;

    /// <summary>User name (optional).</summary>
    public string? User { get; set; }

    /// <summary>Password (optional).</summary>
    public string? Password { get; set; }

    /// <summary>Sender address.</summary>
    public string From { get; set; } = "meshai@localhost";

    /// <summary>STARTTLS/SSL.</summary>
    public bool EnableSsl { get; set; } = true;
}

/// <summary>Every limit and default of the control plane.</summary>
public sealed class ControlLimits
{
    /// <summary>Largest job payload accepted (contract: 4 MiB).</summary>
    [Range(1, int.MaxValue)]
    public int MaxPayloadBytes { get; set; } = 4 * 1024 * 1024;

    /// <summary>Most texts in one embeddings job.</summary>
    [Range(1, 100_000)]
    public int MaxEmbeddingTexts { get; set; } = 256;

    /// <summary>Job timeout when the envelope leaves it 0.</summary>
    [Range(1, int.MaxValue)]
    public int DefaultJobTimeoutMs { get; set; } = 60_000;

    /// <summary>Largest job timeout accepted.</summary>
    [Range(1, int.MaxValue)]
    public int MaxJobTimeoutMs { get; set; } = 600_000;

    /// <summary>Join token lifetime when the request leaves it 0.</summary>
    [Range(1, int.MaxValue)]
    public int JoinTokenDefaultTtlSeconds { get; set; } = 3600;

    /// <summary>Longest join token lifetime.</summary>
    [Range(1, int.MaxValue)]
    public int JoinTokenMaxTtlSeconds { get; set; } = 7 * 24 * 3600;

    /// <summary>Session lifetime.</summary>
    [Range(1, 3650)]
    public int SessionLifetimeDays { get; set; } = 30;

    /// <summary>Magic link lifetime.</summary>
    [Range(1, 1440)]
    public int MagicLinkTtlMinutes { get; set; } = 15;

    /// <summary>Device-code login and device pairing lifetime.</summary>
    [Range(1, 1440)]
    public int DeviceCodeTtlMinutes { get; set; } = 15;

    /// <summary>How often a CLI polls a device-code login.</summary>
    [Range(100, 60_000)]
    public int DeviceCodePollIntervalMs { get; set; } = 1000;

    /// <summary>Device certificate validity.</summary>
    [Range(1, 3650)]
    public int CertificateValidityDays { get; set; } = 30;

    /// <summary>Allowed clock skew of registration proofs.</summary>
    [Range(1, 3600)]
    public int ProofClockSkewSeconds { get; set; } = 300;

    /// <summary>Page size when a list request leaves it 0.</summary>
    [Range(1, 10_000)]
    public int DefaultPageSize { get; set; } = 50;

    /// <summary>Largest page size.</summary>
    [Range(1, 10_000)]
    public int MaxPageSize { get; set; } = 500;

    /// <summary>Credits granted to a new network's pool (see docs: 1000 credits so a new network can run jobs at once).</summary>
    [Range(0, long.MaxValue)]
    public long StartingGrantCredits { get; set; } = 1000;

    /// <summary>Longest network name.</summary>
    [Range(1, 1024)]
    public int MaxNetworkNameLength { get; set; } = 64;

    /// <summary>How often a WatchNetwork stream re-reads devices, jobs and the ledger head.</summary>
    [Range(50, 60_000)]
    public int WatchIntervalMs { get; set; } = 1000;

    /// <summary>Longest silence of a WatchNetwork stream: an empty frame is sent after this long without changes.</summary>
    [Range(1000, 600_000)]
    public int WatchKeepaliveMs { get; set; } = 15_000;

    /// <summary>Most WatchNetwork streams one server process serves at once.</summary>
    [Range(1, 1_000_000)]
    public int MaxWatchStreams { get; set; } = 1024;

    /// <summary>Recent jobs a WatchNetwork stream follows.</summary>
    [Range(1, 1000)]
    public int WatchRecentJobs { get; set; } = 50;
}
