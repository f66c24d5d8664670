import Mustache

/// The dashboard's Mustache templates, compiled into the binary. `{{ }}` escapes HTML (and
/// quotes, so values are safe in attributes); no template uses `{{{ }}}`. Every page
/// inherits `layout` and reads its own data inside `{{#content}}`.
enum DashboardTemplates {
    static func library() throws -> MustacheLibrary {
        var library = MustacheLibrary()
        let all = [LayoutTemplates.all, FileTemplates.all, AccountTemplates.all, RetentionTemplates.all, MemberTemplates.all].joined()
        for (name, text) in all { try library.register(text, named: name) }
        return library
    }
}

/// The layout, the sign-in page and the pages every section shares.
enum LayoutTemplates {
    static let all: [(String, String)] = [
        ("layout", layout), ("csrf", csrf), ("crumbs", crumbs), ("time", time), ("signin", signIn), ("error", error), ("confirm", confirm),
    ]

    static let layout = #"""
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>{{title}} · Ferry</title>
    <link rel="stylesheet" href="{{css}}">
    <script src="{{js}}" defer></script>
    {{#username}}<meta name="csrf-token" content="{{csrf}}">{{/username}}
    </head>
    <body>
    <a class="skip" href="#main">Skip to content</a>
    {{#username}}
    <header class="top">
    <a class="brand" href="/libraries">Ferry</a>
    <nav aria-label="Main"><ul>{{#nav}}<li><a href="{{href}}"{{#current}} aria-current="page"{{/current}}>{{label}}</a></li>{{/nav}}</ul></nav>
    <form class="signout" method="post" action="/signout">{{> csrf}}<span class="who">{{username}}</span> <button type="submit">Sign out</button></form>
    </header>
    {{/username}}
    <main id="main">
    {{$body}}{{/body}}
    </main>
    </body>
    </html>
    """#

    static let csrf = #"<input type="hidden" name="csrf" value="{{csrf}}">"#

    /// A `Stamp`, inside its section: `{{#modified}}{{> time}}{{/modified}}`.
    static let time = #"<time datetime="{{iso}}">{{shown}}</time>"#

    /// A page's `crumbs` (`[Crumb]`): links up to the page, which is the last step.
    static let crumbs = #"""
    <nav aria-label="Breadcrumbs" class="crumbs"><ol>{{#crumbs}}<li>{{#href}}<a href="{{href}}">{{name}}</a>{{/href}}{{^href}}<span aria-current="page">{{name}}</span>{{/href}}</li>{{/crumbs}}</ol></nav>
    """#

    static let signIn = #"""
    {{<layout}}{{$body}}{{#content}}
    <section class="signin">
    <h1>Sign in to Ferry</h1>
    {{#error}}<p class="error" role="alert">{{error}}</p>{{/error}}
    <form class="stack" method="post" action="/signin">
    {{> csrf}}
    <input type="hidden" name="next" value="{{next}}">
    <label for="username">Username</label>
    <input id="username" name="username" autocomplete="username" autocapitalize="none" required maxlength="64" value="{{typedName}}">
    <label for="password">Password</label>
    <input id="password" name="password" type="password" autocomplete="current-password" required maxlength="1024">
    <button type="submit">Sign in</button>
    </form>
    </section>
    {{/content}}{{/body}}{{/layout}}
    """#

    static let error = #"""
    {{<layout}}{{$body}}{{#content}}
    <h1>{{heading}}</h1>
    <p role="alert">{{message}}</p>
    <p><a href="/libraries">Back to your libraries</a></p>
    {{/content}}{{/body}}{{/layout}}
    """#

    static let confirm = #"""
    {{<layout}}{{$body}}{{#content}}
    <h1>{{heading}}</h1>
    <p>{{message}}</p>
    <form class="row" method="post" action="{{action}}">
    {{> csrf}}
    {{#fields}}<input type="hidden" name="{{name}}" value="{{value}}">{{/fields}}
    <input type="hidden" name="confirmed" value="yes">
    <button type="submit" class="danger">{{button}}</button>
    <a href="{{cancelHref}}">Cancel</a>
    </form>
    {{/content}}{{/body}}{{/layout}}
    """#
}
