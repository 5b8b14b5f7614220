#pragma warning disable CA1861 // expected values read best inline
using System.Text.Json;
using MeshAI.Contracts.Job.V1;
using MeshAI.Control.Gateway;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Gateway;

/// <summary>The gateway's strict, bounded parsing of OpenAI request bodies (GatewayRequests).</summary>
[TestFixture]
[Category("Unit")]
public sealed class GatewayRequestsTests
{
    private static readonly GatewayOptions Limits = new() { MaxInputChars = 50, MaxMessages = 3, MaxMessageChars = 40, MaxPromptChars = 60, MaxStops = 2, MaxStopChars = 5, MaxCompletionTokens = 100 };

    private static JsonElement Json(string text) => JsonDocument.Parse(text).RootElement.Clone();

    [Test]
    public void Embeddings_take_a_string_or_an_array_of_strings_and_float_or_base64()
    {
        var one = GatewayRequests.ParseEmbeddings(Json("""{"model":"all-minilm-l6-v2","input":"a cat"}"""), Limits, 4);
        Assert.That(one.Inputs, Is.EqualTo(new[] { "a cat" }));
        Assert.That(one.Base64, Is.False);
        var many = GatewayRequests.ParseEmbeddings(Json("""{"model":"m","input":["a","b"],"encoding_format":"base64","user":"u1"}"""), Limits, 4);
        Assert.That(many.Inputs, Is.EqualTo(new[] { "a", "b" }));
        Assert.That(many.Base64, Is.True);
        var input = many.ToInput();
        Assert.That(input.Embeddings.Model, Is.EqualTo("m"));
        Assert.That(input.Embeddings.Texts, Is.EqualTo(new[] { "a", "b" }));
    }

    [TestCase("""{"input":"x"}""", "model", "missing_required_parameter")]
    [TestCase("""{"model":"m"}""", "input", "missing_required_parameter")]
    [TestCase("""{"model":"m","input":[]}""", "input", "invalid_value")]
    [TestCase("""{"model":"m","input":[1,2,3]}""", "input", "invalid_value")]
    [TestCase("""{"model":"m","input":["a",""]}""", "input[1]", "invalid_value")]
    [TestCase("""{"model":"m","input":["a","b","c","d","e"]}""", "input", "invalid_value")]
    [TestCase("""{"model":"m","input":"x","encoding_format":"int8"}""", "encoding_format", "invalid_value")]
    [TestCase("""{"model":"m","input":"x","dimensions":128}""", "dimensions", "unsupported_parameter")]
    [TestCase("""{"model":"m","input":"x","extra":true}""", "extra", "unknown_parameter")]
    public void Bad_embeddings_requests_are_400_naming_the_field(string body, string param, string code)
    {
        var ex = Assert.Throws<GatewayException>(() => GatewayRequests.ParseEmbeddings(Json(body), Limits, 4))!;
        Assert.That((ex.Status, ex.Param, ex.Code, ex.Type), Is.EqualTo((400, param, code, "invalid_request_error")), ex.Message);
    }

    [Test]
    public void An_embeddings_input_over_the_character_bound_is_refused()
    {
        var ex = Assert.Throws<GatewayException>(() => GatewayRequests.ParseEmbeddings(Json($$"""{"model":"m","input":["ok","{{new string('x', 51)}}"]}"""), Limits, 4))!;
        Assert.That(ex.Param, Is.EqualTo("input[1]"));
        Assert.That(ex.Message, Does.Contain("at most 50 characters"));
    }

    [Test]
    public void Chat_maps_roles_text_parts_limits_stop_and_stream_options()
    {
        var call = GatewayRequests.ParseChat(Json("""
            {"model":"tiny","messages":[{"role":"developer","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi "},{"type":"text","text":"there"}]},{"role":"assistant","content":"ok"}],
             "max_completion_tokens":12,"temperature":0,"stop":["\n","END"],"stream":true,"stream_options":{"include_usage":true},"n":1,"top_p":0.9,"seed":7,"presence_penalty":0}
            """), Limits);
        Assert.That(call.Messages.Select(m => (m.Role, m.Content)), Is.EqualTo(new[] { (ChatRole.System, "be brief"), (ChatRole.User, "hi there"), (ChatRole.Assistant, "ok") }));
        Assert.That((call.MaxTokens, call.Stream, call.IncludeUsage), Is.EqualTo((12, true, true)));
        Assert.That(call.Temperature, Is.GreaterThan(0f).And.LessThan(0.01f), "temperature 0 means greedy, not the handler's default");
        Assert.That(call.Stop, Is.EqualTo(new[] { "\n", "END" }));
        var input = call.ToInput().Chat;
        Assert.That((input.Model, input.MaxTokens, input.Messages.Count), Is.EqualTo(("tiny", 12, 3)));
    }

    [TestCase("""{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]}""", "tools", "unsupported_parameter")]
    [TestCase("""{"model":"m","messages":[{"role":"user","content":"x"}],"n":2}""", "n", "unsupported_parameter")]
    [TestCase("""{"model":"m","messages":[{"role":"user","content":"x"}],"logprobs":true}""", "logprobs", "unsupported_parameter")]
    [TestCase("""{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}}""", "response_format", "unsupported_parameter")]
    [TestCase("""{"model":"m","messages":[{"role":"user","content":"x"}],"frequency_penalty":0.5}""", "frequency_penalty", "unsupported_parameter")]
    [TestCase("""{"model":"m","messages":[{"role":"tool","content":"x"}]}""", "messages[0].role", "invalid_value")]
    [TestCase("""{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}""", "messages[0].content", "invalid_value")]
    [TestCase("""{"model":"m","messages":[{"role":"assistant","content":null}]}""", "messages[0].content", "invalid_value")]
    [TestCase("""{"model":"m","messages":[]}""", "messages", "invalid_value")]
    [TestCase("""{"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":"b"},{"role":"user","content":"c"},{"role":"user","content":"d"}]}""", "messages", "invalid_value")]
    [TestCase("""{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0}""", "max_tokens", "invalid_value")]
    [TestCase("""{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":101}""", "max_tokens", "invalid_value")]
    [TestCase("""{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":2.5}""", "temperature", "invalid_value")]
    [TestCase("""{"model":"m","messages":[{"role":"user","content":"x"}],"stop":["a","b","c"]}""", "stop", "invalid_value")]
    [TestCase("""{"model":"m","messages":[{"role":"user","content":"x"}],"stop":"toolong"}""", "stop", "invalid_value")]
    [TestCase("""{"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"}""", "stream", "invalid_value")]
    public void Bad_chat_requests_are_400_naming_the_field(string body, string param, string code)
    {
        var ex = Assert.Throws<GatewayException>(() => GatewayRequests.ParseChat(Json(body), Limits))!;
        Assert.That((ex.Status, ex.Param, ex.Code), Is.EqualTo((400, param, code)), ex.Message);
    }

    [Test]
    public void Chat_prompts_are_bounded_per_message_and_in_total()
    {
        var perMessage = Assert.Throws<GatewayException>(() => GatewayRequests.ParseChat(Json($$"""{"model":"m","messages":[{"role":"user","content":"{{new string('x', 41)}}"}]}"""), Limits))!;
        Assert.That(perMessage.Param, Is.EqualTo("messages[0].content"));
        var total = Assert.Throws<GatewayException>(() => GatewayRequests.ParseChat(Json($$"""{"model":"m","messages":[{"role":"user","content":"{{new string('x', 40)}}"},{"role":"user","content":"{{new string('y', 40)}}"}]}"""), Limits))!;
        Assert.That(total.Param, Is.EqualTo("messages"));
        Assert.That(total.Message, Does.Contain("at most 60 characters together"));
    }

    [Test]
    public void A_body_that_is_not_an_object_or_has_a_bad_model_is_refused()
    {
        Assert.That(Assert.Throws<GatewayException>(() => GatewayRequests.ParseChat(Json("[1]"), Limits))!.Code, Is.EqualTo("invalid_json"));
        Assert.That(Assert.Throws<GatewayException>(() => GatewayRequests.ParseEmbeddings(Json($$"""{"model":"{{new string('m', 101)}}","input":"x"}"""), Limits, 4))!.Param, Is.EqualTo("model"));
        Assert.That(Assert.Throws<GatewayException>(() => GatewayRequests.ParseEmbeddings(Json("""{"model":"a\u0007b","input":"x"}"""), Limits, 4))!.Param, Is.EqualTo("model"));
    }
}
