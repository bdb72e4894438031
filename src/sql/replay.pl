#!/usr/bin/perl
# Prints what an update runs of the install pieces: a piece added since the
# released version whole, and of the others the statements an update replays:
# functions, views, triggers, policies, grants, comments and the DO blocks that
# create them.  Their tables, indexes, constraints and shipped rows are created
# once; changes to them are written in src/sql/updates/ (docs/architecture.md,
# "Versions and updates").
#
#   replay.pl [--new PIECE]... PIECE... > replayed.sql
#
# A statement of a kind this script does not know, or a CREATE that cannot run
# twice, stops the build with its file and line.
use strict;
use warnings;

# Kinds an update replays: each must succeed on a database that already has it.
my $replayed = qr/^(?:CREATE\s+OR\s+REPLACE\s+(?:FUNCTION|PROCEDURE|VIEW|TRIGGER)
	|CREATE\s+POLICY|COMMENT\s+ON|GRANT|REVOKE|ALTER\s+FUNCTION|SELECT|DO
	|ALTER\s+TABLE\s+\S+\s+(?:ENABLE|DISABLE)\s+(?:ALWAYS\s+|REPLICA\s+)?(?:TRIGGER|ROW\s+LEVEL\s+SECURITY))\b/ix;
# Kinds created once: an update changes them in its own script.
my $created_once = qr/^(?:CREATE\s+(?:UNLOGGED\s+)?TABLE|CREATE\s+(?:UNIQUE\s+)?INDEX|CREATE\s+CONSTRAINT\s+TRIGGER
	|CREATE\s+(?:SEQUENCE|TYPE|DOMAIN)|ALTER\s+TABLE|INSERT|\\echo)\b/ix;

my %new;
while (@ARGV >= 2 && $ARGV[0] eq '--new')
{
	shift @ARGV;
	$new{ shift @ARGV } = 1;
}
for my $file (@ARGV)
{
	open my $fh, '<', $file or die "$file: $!\n";
	my $text = do { local $/; <$fh> };
	close $fh;
	if ($new{$file})
	{
		print $text;
		next;
	}
	for my $s (statements($text))
	{
		my ($line, $sql) = @$s;
		my $code = $sql;
		$code =~ s/^((?:\s+|--[^\n]*\n)+)//;    # leading comments and blanks
		$line += (($1 // '') =~ tr/\n//);
		next if $code eq '';
		if ($code =~ /^CREATE\s+(FUNCTION|PROCEDURE|VIEW|TRIGGER)\b/i)
		{
			die "$file:$line: an update replays this CREATE $1: write CREATE OR REPLACE $1\n";
		}
		if ($code =~ $replayed)
		{
			# a policy has no OR REPLACE: the update drops the one it replaces
			print "DROP POLICY IF EXISTS $1 ON $2;\n"
			  if $code =~ /^CREATE\s+POLICY\s+(\S+)\s+ON\s+(\S+)/i;
			print $sql, "\n";
		}
		elsif ($code !~ $created_once)
		{
			my ($first) = $code =~ /^([^\n]*)/;
			die "$file:$line: an update cannot tell whether to replay \"$first\": add its kind to src/sql/replay.pl\n";
		}
	}
}

# Splits SQL text into [line, statement] pairs at top-level semicolons, past
# comments, quoted strings and identifiers, dollar quotes, and BEGIN ATOMIC bodies.
sub statements
{
	my ($text) = @_;
	my @out;
	my ($start, $line, $start_line, $depth, $atomic) = (0, 1, 1, 0, 0);
	pos($text) = 0;
	while (pos($text) < length($text))
	{
		if ($text =~ /\G(--[^\n]*|\/\*.*?\*\/|'(?:[^']|'')*'|"(?:[^"]|"")*"|\s+)/gcs) { }
		elsif ($text =~ /\G(\$([A-Za-z_]\w*)?\$)/gc)
		{
			my $tag = $1;
			$text =~ /\G.*?\Q$tag\E/gcs or die "unterminated $tag\n";
		}
		elsif ($text =~ /\G(BEGIN\s+ATOMIC)\b/gci) { $atomic = 1; $depth = 1; }
		elsif ($text =~ /\G(CASE|BEGIN)\b/gci) { $depth++ if $atomic; }
		elsif ($text =~ /\G(END)\b/gci) { $depth-- if $atomic; }
		elsif ($text =~ /\G;/gc)
		{
			next if $atomic && $depth > 0;
			my $end = pos($text);
			my $sql = substr($text, $start, $end - $start);
			push @out, [ $start_line, $sql ];
			$line += ($sql =~ tr/\n//);
			$start = $end;
			$start_line = $line;
			$atomic = 0;
		}
		else { $text =~ /\G(\w+|.)/gcs; }
	}
	return @out;
}
