using System.Text.RegularExpressions;
using MeshAI.Common.Errors;
using MeshAI.Testing;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Hardening;

/// <summary>
/// Every RPC's proto comment lists its failure codes (Temporal style: "Errors:" then "CODE (REASON, …): when"), every code
/// named is a gRPC status code and every reason named is one the server can send (<see cref="ErrorReasons"/>); and every
/// reason of the catalogue is explained in docs/errors.md.
/// </summary>
[TestFixture]
[Category("Unit")]
public sealed partial class ProtoErrorDocsTests
{
    private static readonly HashSet<string> Codes = Enum.GetNames<Grpc.Core.StatusCode>()
        .Select(n => Regex.Replace(n, "(?<=[a-z])(?=[A-Z])", "_").ToUpperInvariant()).ToHashSet(StringComparer.Ordinal);

    private static IEnumerable<string> ServiceFiles() =>
        Directory.GetFiles(RepoPaths.Combine("protos", "meshai"), "*.proto", SearchOption.AllDirectories)
            .Where(f => File.ReadAllText(f).Contains("\nservice ", StringComparison.Ordinal));

    [Test]
    public void Every_rpc_comment_lists_its_error_codes_with_known_reasons()
    {
        var problems = new List<string>();
        var rpcs = 0;
        foreach (var file in ServiceFiles())
        {
            var lines = File.ReadAllLines(file);
            for (var i = 0; i < lines.Length; i++)
            {
                var rpc = RpcLine().Match(lines[i]);
                if (!rpc.Success)
                {
                    continue;
                }

                rpcs++;
                var comment = new List<string>();
                for (var j = i - 1; j >= 0 && lines[j].TrimStart().StartsWith("//", StringComparison.Ordinal); j--)
                {
                    comment.Insert(0, lines[j].Trim().TrimStart('/').Trim());
                }

                var name = $"{Path.GetFileName(file)} {rpc.Groups[1].Value}";
                var errors = comment.SkipWhile(l => !l.StartsWith("Errors:", StringComparison.Ordinal)).ToList();
                if (errors.Count == 0)
                {
                    problems.Add(name + ": no \"Errors:\" section");
                    continue;
                }

                var text = string.Join(" ", errors);
                var named = CodeWithReasons().Matches(text).ToList();
                if (named.Count == 0 && !text.Contains("only the common ones", StringComparison.Ordinal))
                {
                    problems.Add(name + ": the Errors section names no CODE (REASON)");
                }

                foreach (Match m in CodeWithReasons().Matches(text))
                {
                    if (!Codes.Contains(m.Groups[1].Value))
                    {
                        problems.Add($"{name}: {m.Groups[1].Value} is not a gRPC status code");
                    }
                }

                foreach (Match m in ReasonList().Matches(text))
                {
                    foreach (var reason in m.Groups[1].Value.Split(',', StringSplitOptions.TrimEntries))
                    {
                        if (!ErrorReasons.All.Contains(reason))
                        {
                            problems.Add($"{name}: reason {reason} is not in ErrorReasons");
                        }
                    }
                }
            }
        }

        Assert.That(rpcs, Is.GreaterThan(50));
        Assert.That(problems, Is.Empty, string.Join("\n", problems));
    }

    [Test]
    public void Every_reason_the_server_can_send_is_explained_in_the_errors_doc()
    {
        var doc = File.ReadAllText(RepoPaths.Combine("docs", "errors.md"));
        var missing = ErrorReasons.All.Where(r => !doc.Contains("`" + r + "`", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList();
        Assert.That(missing, Is.Empty, "explain these reasons in docs/errors.md");
    }

    [GeneratedRegex(@"^\s*rpc\s+(\w+)\s*\(")]
    private static partial Regex RpcLine();

    [GeneratedRegex(@"\b([A-Z][A-Z_]+)\s*\(([A-Z0-9_, ]+)\)")]
    private static partial Regex CodeWithReasons();

    [GeneratedRegex(@"\(([A-Z][A-Z0-9_]*(?:,\s*[A-Z][A-Z0-9_]*)*)\)")]
    private static partial Regex ReasonList();
}
