// A Python test suite on TeamCity, reported by ci-sidecar (Kotlin DSL, .teamcity/settings.kts):
//  - `ci-sidecar exec` prints the run as service messages while the tests run: each test appears in the build's
//    Tests tab as it finishes, failures with their message and stack, a build problem when the run fails, the
//    status text and a tag at the end (no token needed);
//  - artifacts the tests attach are staged in ci-sidecar-staged/artifacts and published by exec
//    (publishArtifacts) under ci-sidecar/<run id>/; the artifact rule below also collects any staged by a
//    daemon outside exec;
//  - commit statuses and the sticky pull request comment go to GitHub (the code host) with GITHUB_TOKEN.
// docs/teamcity.md explains each part.
import jetbrains.buildServer.configs.kotlin.*
import jetbrains.buildServer.configs.kotlin.buildFeatures.pullRequests
import jetbrains.buildServer.configs.kotlin.buildSteps.script

version = "2024.03"

project {
    buildType(UnitTests)
}

object UnitTests : BuildType({
    name = "Unit tests"

    vcs {
        root(DslContext.settingsRoot)
    }

    params {
        // a fine-grained GitHub token with "Commit statuses" and "Pull requests" write access
        password("env.GITHUB_TOKEN", "credentialsJSON:00000000-0000-0000-0000-000000000000", display = ParameterDisplay.HIDDEN)
    }

    artifactRules = "ci-sidecar-staged/artifacts => ci-sidecar"

    steps {
        script {
            name = "Tests"
            scriptContent = """
                python3 -m venv .venv && .venv/bin/pip install --quiet ci-sidecar pytest
                export PATH="${'$'}PWD/.venv/bin:${'$'}PATH"
                ci-sidecar doctor
                ci-sidecar exec --name "unit tests" --junit "reports/*.xml" -- pytest --junitxml=reports/pytest.xml
            """.trimIndent()
        }
    }

    features {
        // teamcity.pullRequest.number: the sticky comment goes to the pull request a build runs for
        pullRequests {
            provider = github {
                authType = token {
                    token = "credentialsJSON:00000000-0000-0000-0000-000000000000"
                }
                filterTargetBranch = "+:<default>"
            }
        }
    }
})
